"""The daily ingest run of one logical date, stage by stage, as the ingest DAG calls it.

Plain functions over plain values (dates, dicts), importable without Airflow; heavy
libraries are imported by the stages themselves, when called.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict

from pipelines.settings import get_settings
from pipelines.usecases.spec import resolve_usecase


def land(name: str, day: dt.date) -> dict:
    """Land use case `name`'s partitions of the day and its reference snapshots; `relanded`: the earlier days an
    incremental table's late changes landed again (validated, loaded and rebuilt with the day)."""
    from pipelines.ingest import land_day, land_reference, relanded_days

    settings = get_settings()
    usecase = resolve_usecase(settings, name)
    days = land_day(settings, usecase, day)
    landed = days + land_reference(settings, usecase)
    tables: dict[str, dict] = {}
    for p in landed:
        tables.setdefault(p.table, {})[p.logical_date] = {"rows": p.rows, "sha256": p.sha256}
    return {"tables": tables, "relanded": [d.isoformat() for d in relanded_days(days, day)]}


def validate(name: str, day: dt.date, relanded: list[str] = ()) -> dict:
    """Validate the day's partitions (and those landed again) and the reference snapshots with their suites;
    raises ValidationFailed."""
    from pipelines.validation import data_docs_once, validate_partition

    settings = get_settings()
    usecase = resolve_usecase(settings, name)
    days = [*map(dt.date.fromisoformat, relanded), day]
    with data_docs_once(settings):
        outcomes = [validate_partition(settings, usecase, table, d) for d in days
                    for table in usecase.sources.partitioned]  # fmt: skip
        outcomes += [validate_partition(settings, usecase, table, None) for table in usecase.sources.reference]
    checked: dict[str, dict] = {}
    for o in outcomes:
        checked.setdefault(o.table, {})[o.logical_date] = {"success": o.success, "evaluated": o.evaluated,
                                                           "result": o.result_path}  # fmt: skip
    return {"tables": checked, "relanded": list(relanded)}


def transform(name: str, day: dt.date, relanded: list[str] = ()) -> dict:
    """Load the validated day (and the days landed again) into the warehouse, run `dbt build` day by day from
    the earliest of them (trailing features read the days before) and, with the embedded warehouse, export
    the marts for Feast's offline store (all while holding the one writer slot)."""
    from pipelines.features.store import export_marts
    from pipelines.features.transform import build_features
    from pipelines.ingest.warehouse import load_day, load_reference

    settings = get_settings()
    usecase = resolve_usecase(settings, name)
    again = sorted(map(dt.date.fromisoformat, relanded))
    loaded = load_reference(settings, usecase)
    for earlier in again:
        loaded.update({f"{t} {earlier}": n for t, n in load_day(settings, usecase, earlier).items()})
    loaded.update(load_day(settings, usecase, day))
    built, seconds, rebuilt = 0, 0.0, (again[0] if again else day)
    while rebuilt <= day:
        result = build_features(settings, usecase, rebuilt)
        built, seconds, rebuilt = built + result.passed, seconds + result.seconds, rebuilt + dt.timedelta(days=1)
    exported = export_marts(settings, usecase) if settings.feast_env == "local" else {}
    return {
        "loaded": loaded,
        "rebuilt_from": (again[0] if again else day).isoformat(),
        "dbt_nodes_passed": built,
        "dbt_seconds": round(seconds, 1),
        "exported_rows": exported,
        "relanded": list(relanded),
    }


def materialize(name: str, day: dt.date) -> dict:
    """Apply the Feast definitions and materialize features up to the end of the day (in the use case's zone),
    but for the views whose stream is already past it."""
    from pipelines.features.store import materialize as materialize_features
    from pipelines.streaming.sink import streamed_since

    settings = get_settings()
    usecase = resolve_usecase(settings, name)
    end_of_day = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), usecase.tz)
    ahead = streamed_since(settings, usecase, end_of_day)
    return asdict(materialize_features(settings, usecase, end_of_day, ahead))


# A range of days in one task each (the backfill DAG): the same stages, each day still its own landed and
# validated partition; the marts rebuilt once from the raw tables instead of once a day.


def land_days(name: str, first: dt.date, last: dt.date) -> dict:
    """Land every day of [first, last] (then the reference snapshots), as `land` lands one; `relanded`: the
    earlier days before `first` that an incremental table's late changes landed again."""
    from pipelines.ingest import land_day, land_reference, relanded_days

    settings = get_settings()
    usecase = resolve_usecase(settings, name)
    rows: dict[str, int] = {}
    earlier: set[dt.date] = set()
    for day in _days(first, last):
        landed = land_day(settings, usecase, day)
        earlier.update(d for d in relanded_days(landed, day) if d < first)
        for p in landed:
            rows[p.table] = rows.get(p.table, 0) + p.rows
    for p in land_reference(settings, usecase):
        rows[p.table] = p.rows
    return {"first": first.isoformat(), "last": last.isoformat(), "rows": rows,
            "relanded": [d.isoformat() for d in sorted(earlier)]}  # fmt: skip


def validate_days(name: str, first: dt.date, last: dt.date, relanded: list[str] = ()) -> dict:
    """Validate each day's partitions in order (the days landed again first), then the reference snapshots;
    raises ValidationFailed at the first partition that fails, naming it: nothing is loaded."""
    from pipelines.validation import data_docs_once, validate_partition

    settings = get_settings()
    usecase = resolve_usecase(settings, name)
    evaluated: dict[str, int] = {}
    with data_docs_once(settings):
        for day in [*map(dt.date.fromisoformat, relanded), *_days(first, last)]:
            for table in usecase.sources.partitioned:
                outcome = validate_partition(settings, usecase, table, day)
                evaluated[table] = evaluated.get(table, 0) + outcome.evaluated
        for table in usecase.sources.reference:
            evaluated[table] = validate_partition(settings, usecase, table, None).evaluated
    return {"first": first.isoformat(), "last": last.isoformat(), "expectations_evaluated": evaluated,
            "relanded": list(relanded)}  # fmt: skip


def transform_days(name: str, first: dt.date, last: dt.date, relanded: list[str] = ()) -> dict:
    """Load the validated days (and those landed again) into the warehouse, then rebuild the use case's marts
    from the raw tables in one `dbt build --full-refresh` (what day-by-day builds make, in one dbt run whatever
    the number of days) and, with the embedded warehouse, export them for Feast's offline store."""
    from pipelines.features.store import export_marts
    from pipelines.features.transform import build_features
    from pipelines.ingest.warehouse import load_day, load_reference

    settings = get_settings()
    usecase = resolve_usecase(settings, name)
    loaded = load_reference(settings, usecase)
    for day in [*map(dt.date.fromisoformat, relanded), *_days(first, last)]:
        for table, rows in load_day(settings, usecase, day).items():
            loaded[table] = loaded.get(table, 0) + rows
    result = build_features(settings, usecase, None)
    exported = export_marts(settings, usecase) if settings.feast_env == "local" else {}
    return {"loaded": loaded, "dbt_nodes_passed": result.passed, "dbt_seconds": round(result.seconds, 1),
            "exported_rows": exported}  # fmt: skip


def _days(first: dt.date, last: dt.date) -> list[dt.date]:
    if last < first:
        from pipelines.errors import SettingsError

        raise SettingsError(f"a backfill from {first} to {last} is empty: give first_day <= last_day")
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]


def reconcile_stream(name: str, day: dt.date) -> list[str]:
    """The day's stream-written feature values against the batch's marts; raises StreamBatchMismatch naming
    what differs, NothingToDo when the stream processor did not see the day."""
    from pipelines.errors import NothingToDo
    from pipelines.streaming.reconcile import reconcile_day
    from pipelines.streaming.sink import streamed_since

    settings = get_settings()
    usecase = resolve_usecase(settings, name)
    start = dt.datetime.combine(day, dt.time(), usecase.tz)
    if not streamed_since(settings, usecase, start):  # before Feast's import: most batch-only days stop here
        raise NothingToDo(f"{name} {day}: no stream rows to reconcile (the stream processor did not see the day)")
    return [result.describe() for result in reconcile_day(settings, usecase, day)]


def reconcile_stream_days(name: str, days: list[dt.date]) -> list[str]:
    """Each day the streams have passed, reconciled whole where the batch has built it (the others are left to
    their ingest run's reconcile_stream); raises StreamBatchMismatch naming every difference of every day,
    NothingToDo when no day could be compared."""
    from pipelines.errors import NothingToDo, StreamBatchMismatch
    from pipelines.streaming.reconcile import batch_built, reconcile_day

    settings = get_settings()
    usecase = resolve_usecase(settings, name)
    said, broken, compared = [], [], 0
    for day in days:
        if not batch_built(settings, usecase, day):
            said.append(f"{day}: not built by the batch yet; its ingest run's reconcile_stream compares it")
            continue
        try:
            said += [f"{day}: {result.describe()}" for result in reconcile_day(settings, usecase, day)]
        except NothingToDo as exc:
            said.append(str(exc))
            continue
        except StreamBatchMismatch as exc:
            broken.append(str(exc))
        compared += 1
    print("\n".join(said))
    if broken:
        raise StreamBatchMismatch("\n".join(broken))
    if not compared:
        raise NothingToDo(
            f"{name}: nothing reconciled for {', '.join(map(str, days)) or 'no day'}:\n" + "\n".join(said)
        )
    return said
