"""Validate raw partitions with the Great Expectations suites kept in expectations/.

One checkpoint per raw table; each run validates one landed partition (or reference
snapshot), writes its result and refreshes the Data Docs site under the data root.

A process keeps its Great Expectations context and checkpoints (reading and writing the project's
YAML for every partition cost more than validating it), and the Data Docs index lists the newest
DATA_DOCS_INDEX_RESULTS results: GX reads back every result it lists on each refresh, so an
unbounded index made each day's validation slower than the day before. Every result stays stored
and rendered under the data root.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import sys
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from pipelines.errors import ValidationFailed
from pipelines.ingest.landing import landed_partition, reference_path
from pipelines.settings import REPO_ROOT, Settings
from pipelines.usecases.spec import UseCase

SUITES_DIR = REPO_ROOT / "expectations"
DATA_DOCS_SITE = "local_site"
DATA_DOCS_INDEX_RESULTS = 100  # about three weeks of a use case's daily results at five tables a day


@dataclass(frozen=True)
class ValidationOutcome:
    table: str
    logical_date: str
    success: bool
    evaluated: int
    failed: list[str]
    run_id: str
    result_path: str
    data_docs_index: str


def suite_definition(suite: str) -> dict:
    """An expectation suite, as stored in expectations/<suite>.json."""
    path = SUITES_DIR / f"{suite}.json"
    if not path.is_file():
        raise ValidationFailed(f"no expectation suite {suite!r}: expected {path}")
    return json.loads(path.read_text())


def validate_partition(settings: Settings, usecase: UseCase, table: str, day: dt.date | None) -> ValidationOutcome:
    """Validate one landed partition (`day`) of the spec's `table`, or its reference snapshot (`day` None),
    with the table's suite and row bounds and the day's window in the spec's time zone.

    Raises ValidationFailed listing every failed expectation; the outcome is written either way.
    """
    import pandas as pd

    spec = usecase.sources.tables[table]
    path = landed_partition(settings, table, day) if day else reference_path(settings, table)
    frame = pd.read_parquet(path)
    parameters = {}
    if spec.rows_per_day is not None:
        parameters["min_rows"], parameters["max_rows"] = spec.rows_per_day
    if day is not None:
        start = dt.datetime.combine(day, dt.time(), usecase.tz)
        parameters["window_start"] = pd.Timestamp(start).tz_convert("UTC")
        parameters["window_end"] = pd.Timestamp(start + dt.timedelta(days=1)).tz_convert("UTC") - pd.Timedelta(
            seconds=1
        )
    outcome = run_checkpoint(settings, table, spec.suite, day.isoformat() if day else "reference", frame,
                             parameters)  # fmt: skip
    if not outcome.success:
        raise ValidationFailed(
            f"raw {table} partition {outcome.logical_date} failed {len(outcome.failed)} of "
            f"{outcome.evaluated} expectations:\n  - "
            + "\n  - ".join(outcome.failed)
            + f"\nNothing downstream was run. Result: {outcome.result_path}; "
            f"Data Docs: {outcome.data_docs_index}. Fix the source and re-run this date."
        )
    return outcome


@contextlib.contextmanager
def _exclusive(settings: Settings) -> Iterator[None]:
    """One writer at a time for the Great Expectations project under the data root: its suites,
    validation definitions and Data Docs are files that concurrent runs would otherwise overwrite."""
    settings.validation_dir.mkdir(parents=True, exist_ok=True)
    with (settings.validation_dir / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def run_checkpoint(
    settings: Settings, table: str, suite: str, label: str, frame, parameters: dict
) -> ValidationOutcome:
    """Validate `frame` (raw table `table`) with `suite` and `parameters` (its $PARAMETERs), recording the
    result as `label` and refreshing Data Docs; never raises on failed expectations (the outcome says)."""
    import great_expectations as gx

    definition = suite_definition(suite)
    frame = widened(frame, definition)
    with _exclusive(settings):
        outcome, results = _run_checkpoint_locked(gx, settings, table, suite, definition, label, frame, parameters)
    _publish(settings, results)
    return outcome


def widened(frame, suite: dict):
    """`frame` with its integer and float columns narrower than 64 bits as int64 / float64: the only dtypes whose
    range checks Great Expectations evaluates vectorised (it compares an int16 column's values one by one in
    Python: 7.7x the same checks in pandas at 1M rows). No value changes, and a column whose types the suite
    restricts is widened only when both its own type and the wider one are allowed: every type check passes or
    fails as on the frame as landed."""
    import numpy as np

    allowed = {e["kwargs"]["column"]: set(e["kwargs"]["type_list"]) for e in suite["expectations"]
               if e["type"] == "expect_column_values_to_be_in_type_list"}  # fmt: skip
    wider = {}
    for column, dtype in frame.dtypes.items():
        if not isinstance(dtype, np.dtype) or dtype.itemsize >= 8 or dtype.kind not in "iuf":
            continue
        target = "float64" if dtype.kind == "f" else "int64"
        if column in allowed and not {str(dtype), target} <= allowed[column]:
            continue
        wider[column] = target
    # copy(): one block per dtype again (astype leaves one per column, and GX's per-expectation filters then
    # consolidate them over and over: 1.9x slower than the frame as landed at 1M rows)
    return frame.astype(wider).copy() if wider else frame


def _run_checkpoint_locked(
    gx, settings: Settings, table: str, suite_name: str, definition: dict, label: str, frame, parameters: dict
) -> tuple[ValidationOutcome, list]:
    checkpoint = _checkpoint(gx, settings, table, suite_name, definition)
    result = checkpoint.run(
        batch_parameters={"dataframe": frame},
        expectation_parameters=parameters,
        run_id=gx.RunIdentifier(run_name=f"{table}-{label}"),
    )
    validation_result = next(iter(result.run_results.values()))
    failed = [_describe(r) for r in validation_result.results if not r.success]
    evaluated = len(validation_result.results)
    result_path = settings.validation_dir / "results" / table / f"{label}.json"
    result_path.parent.mkdir(parents=True, exist_ok=True)
    docs_index = settings.validation_dir / "gx" / "uncommitted" / "data_docs" / DATA_DOCS_SITE / "index.html"
    outcome = ValidationOutcome(
        table=table,
        logical_date=label,
        success=bool(result.success),
        evaluated=evaluated,
        failed=failed,
        run_id=str(result.run_id),
        result_path=str(result_path),
        data_docs_index=str(docs_index),
    )
    result_path.write_text(json.dumps(asdict(outcome), indent=2) + "\n")
    return outcome, list(result.run_results)


_deferred: list | None = None  # results whose Data Docs pages wait for the end of `data_docs_once`


@contextlib.contextmanager
def data_docs_once(settings: Settings) -> Iterator[None]:
    """Refresh Data Docs once, at the end of the block (failed or not), for every partition validated in it:
    a refresh re-renders the suites and the index whatever it adds (0.6 s each on 2 cores)."""
    global _deferred
    outer, _deferred = _deferred, []
    failing = False
    try:
        yield
    except BaseException:
        failing = True
        raise
    finally:
        waiting, _deferred = _deferred, outer
        if waiting:
            try:
                _publish(settings, waiting)
            except Exception as exc:
                if not failing:
                    raise
                # The block's own error (a failed expectation, named) is the one to see; its results are stored.
                print(f"Data Docs not refreshed after the failure: {type(exc).__name__}: {exc}", file=sys.stderr)


def _publish(settings: Settings, results: list) -> None:
    """Render the results' Data Docs pages and the index now, or at the end of `data_docs_once`."""
    if _deferred is not None:
        _deferred.extend(results)
        return
    import great_expectations as gx

    with _exclusive(settings):
        context = _project_context(gx, settings)
        context.build_data_docs(site_names=[DATA_DOCS_SITE], resource_identifiers=results)


def _project_context(gx, settings: Settings):
    project = settings.validation_dir
    where = (str(project), project.stat().st_ino)
    if where not in _contexts:
        _contexts[where] = _context(gx, project)
    return _contexts[where]


_contexts: dict[tuple, object] = {}  # (validation dir, its inode) -> this process's GX file context
_checkpoints: dict[tuple, object] = {}  # (validation dir, its inode, table, suite, its definition) -> Checkpoint


def _checkpoint(gx, settings: Settings, table: str, suite_name: str, definition: dict):
    """The raw table's checkpoint with the suite as `definition` (expectations/ now), set up in the project once
    per process (a data root made afresh at the same path is a new project: its folder is a new inode)."""
    from great_expectations.core import ExpectationSuite

    project = settings.validation_dir
    key = (str(project), project.stat().st_ino, table, suite_name, json.dumps(definition, sort_keys=True))
    if key in _checkpoints:
        return _checkpoints[key]
    context = _project_context(gx, settings)
    suite = context.suites.add_or_update(ExpectationSuite(**definition))
    # The data source is kept (replacing it would drop the other tables' assets) and the table's asset made
    # afresh: an asset read back from the project is not bound to the context, and cannot build a batch.
    try:
        source = context.data_sources.get("raw_zone")
    except KeyError:
        source = context.data_sources.add_pandas(name="raw_zone")
    if any(a.name == table for a in source.assets):
        source.delete_asset(table)
    batch = source.add_dataframe_asset(name=table).add_batch_definition_whole_dataframe("partition")
    validation = context.validation_definitions.add_or_update(
        gx.ValidationDefinition(name=f"raw_{table}", data=batch, suite=suite)
    )
    checkpoint = context.checkpoints.add_or_update(
        gx.Checkpoint(
            name=f"raw_{table}",
            validation_definitions=[validation],  # Data Docs: `_publish`
            result_format={"result_format": "SUMMARY"},
        )
    )
    _checkpoints[key] = checkpoint
    return checkpoint


def _context(gx, project: Path):
    """A GX file context on the project, its Data Docs index bounded to the newest DATA_DOCS_INDEX_RESULTS."""
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="file", project_root_dir=str(project))
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    site = dict(context.variables.data_docs_sites[DATA_DOCS_SITE])
    index = dict(site.get("site_index_builder") or {"class_name": "DefaultSiteIndexBuilder"})
    if index.get("validation_results_limit") != DATA_DOCS_INDEX_RESULTS:
        site["site_index_builder"] = {**index, "validation_results_limit": DATA_DOCS_INDEX_RESULTS}
        context.update_data_docs_site(DATA_DOCS_SITE, site)
    return context


def _describe(result) -> str:
    config = result.expectation_config
    kwargs = {k: v for k, v in config.kwargs.items() if k in ("column", "column_list", "column_set")}
    observed = result.result or {}
    detail = observed.get("observed_value", observed.get("partial_unexpected_list"))
    where = ", ".join(f"{k}={v}" for k, v in kwargs.items())
    return f"{config.type}({where}): observed {detail!r}"[:400]


def load_outcome(path: Path) -> ValidationOutcome:
    return ValidationOutcome(**json.loads(path.read_text()))
