"""The daily ingest run of one logical date, stage by stage, as the ingest DAG calls it.

Plain functions over plain values (dates, dicts), importable without Airflow; heavy
libraries are imported by the stages themselves, when called.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict
from zoneinfo import ZoneInfo

from pipelines.settings import get_settings


def land(day: dt.date) -> dict:
    """Land the day's flights and weather partitions and the reference snapshots."""
    from pipelines.ingest import land_day, land_reference

    settings = get_settings()
    landed = land_day(settings, day) + land_reference(settings)
    return {p.table: {"rows": p.rows, "sha256": p.sha256} for p in landed}


def validate(day: dt.date) -> dict:
    """Validate the day's partitions and the reference snapshots; raises ValidationFailed."""
    from pipelines.validation import validate_partition

    settings = get_settings()
    outcomes = [validate_partition(settings, table, day) for table in ("flights", "weather")]
    outcomes += [validate_partition(settings, table, None) for table in ("planes", "airports", "airlines")]
    return {o.table: {"success": o.success, "evaluated": o.evaluated, "result": o.result_path} for o in outcomes}


def transform(day: dt.date) -> dict:
    """Load the validated day into the warehouse, run `dbt build` for it and, with the embedded
    warehouse, export the marts for Feast's offline store (all while holding the one writer slot)."""
    from pipelines.features.store import export_marts
    from pipelines.features.transform import build_features
    from pipelines.ingest.warehouse import load_day, load_reference

    settings = get_settings()
    loaded = {**load_reference(settings), **load_day(settings, day)}
    result = build_features(settings, day)
    exported = export_marts(settings) if settings.feast_env == "local" else {}
    return {
        "loaded": loaded,
        "dbt_nodes_passed": result.passed,
        "dbt_seconds": round(result.seconds, 1),
        "exported_rows": exported,
    }


def materialize(day: dt.date, tz: ZoneInfo) -> dict:
    """Apply the Feast definitions and materialize features up to the end of the day (local to `tz`)."""
    from pipelines.features.store import materialize as materialize_features

    end_of_day = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tz)
    return asdict(materialize_features(get_settings(), end_of_day))
