"""Batch inference: a day's prediction items scored with the champion.

The champion is loaded exactly as the model service loads it (manifest signature, decryption under the
evaluation identity, file hashes, the FeatureService contract), and every item gets the features the offline
store held at the item's prediction time (the spec's `prediction.lead_time`), as training's point-in-time join
gives them: a batch answer is what the service would have answered at that instant from a complete stream.
An item whose data subject objects to automated decisions is not scored (`decision: human_review`), as online.

The items are streamed in chunks (memory grows with the chunk, not the day) into a Parquet file beside the
partition's final path, renamed over it only once it is whole; the warehouse table `batch.<use case>` has the
day replaced in one transaction. A re-run replaces the partition; a failure leaves the previous one. Every row
carries the model version, the FeatureService and its definitions' hash, and the run id; the ledger records the
partition with its SHA-256.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.compute.planner import ONNXRUNTIME, XGBOOST, current_calibration, plan_scoring
from pipelines.errors import PlatformError
from pipelines.ingest.landing import file_sha256
from pipelines.settings import Settings
from pipelines.usecases.spec import UseCase

log = logging.getLogger(__name__)

BATCH_SCHEMA = "batch"
DAY_COLUMN = "day"
CHUNK_ROWS = 50_000
HUMAN_REVIEW = "human_review"
_FIELD_TYPES = {
    "string": pa.string(),
    "number": pa.float64(),
    "integer": pa.int64(),
    "local_datetime": pa.timestamp("us"),
}


class BadItems(PlatformError):
    """Prediction items that do not match the spec's `serving.fields`: nothing of the partition is written."""


@dataclass
class BatchResult:
    usecase: str
    day: str
    rows: int
    scored: int
    human_review: int
    model_version: int
    feature_service: str
    definitions_sha256: str
    run_id: str
    path: str
    sha256: str
    table: str
    chunks: int
    chunk_rows: int
    plan: dict  # the compute planner's choice (pipelines/compute/planner.py) and why
    seconds: float

    def render(self) -> str:
        return (
            f"{self.usecase} {self.day}: {self.rows} items ({self.scored} scored, {self.human_review} for human "
            f"review) by v{self.model_version} on {self.feature_service} in {self.chunks} chunk(s) of at most "
            f"{self.chunk_rows}, {self.seconds:.1f} s -> {self.path} and {self.table}; {self.plan['reason']}"
        )


def partition_file(settings: Settings, usecase: UseCase, day: dt.date) -> Path:
    return settings.data_root / "batch" / usecase.name / f"date={day.isoformat()}" / "scores.parquet"


def table_name(usecase: UseCase) -> str:
    return f"{BATCH_SCHEMA}.{usecase.name}"


def schedule_items(settings: Settings, usecase: UseCase, day: dt.date) -> list[dict]:
    """The day's prediction items as consumers send them (the source's published schedule of the day, mapped by
    the spec's `serving.replay`)."""
    from serving.replay import day_requests

    return day_requests(settings, usecase, day)


def warehouse_items(settings: Settings, usecase: UseCase, table: str, day: dt.date) -> list[dict]:
    """The rows of a warehouse table whose `serving.time` falls in the day, as items (columns named as the
    spec's `serving.fields`)."""
    import re

    from pipelines.features.store import query_warehouse

    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*\.[A-Za-z_][A-Za-z0-9_]*", table):
        raise BadItems(f"items table {table!r} is not schema.table (letters, digits and underscores)")
    fields = list(usecase.serving.fields)
    time_field = usecase.serving.time
    query = (
        f"SELECT {', '.join(fields)} FROM {table} "  # nosec B608 # names checked above and from the validated spec
        f"WHERE CAST({time_field} AS DATE) = DATE '{day.isoformat()}' ORDER BY {time_field}"
    )
    frame = query_warehouse(settings, query)
    frame = frame.astype(object).where(frame.notna(), None)  # SQL NULL is a missing field, not NaN or NaT
    return frame.to_dict("records")


def score_day(
    settings: Settings,
    usecase: UseCase,
    day: dt.date,
    run_id: str,
    items: list[dict] | None = None,
    chunk_rows: int = CHUNK_ROWS,
) -> BatchResult:
    """Score the day's items (the published schedule unless given) with the champion into the day's partition."""
    from pipelines.security.audit import audit_ledger
    from pipelines.security.secrets import PII_SALT_VARIABLE, variable
    from pipelines.security.store import artifact_store
    from pipelines.security.vault import Vault, evaluation_vault
    from pipelines.training.dataset import feature_definitions_hash
    from serving.model import load_model

    started = time.perf_counter()
    items = schedule_items(settings, usecase, day) if items is None else items
    typed = _validated(usecase, items)
    ledger = audit_ledger(settings)
    model = load_model(settings, usecase, artifact_store(settings, ledger), evaluation_vault(settings), ledger)
    runtimes = (ONNXRUNTIME, XGBOOST) if model.family == "xgboost" else (ONNXRUNTIME,)
    plan = plan_scoring(current_calibration(settings), len(typed), len(model.features), runtimes)
    log.info("compute plan: %s", plan.reason)
    predict = _predictor(settings, usecase, model, plan, ledger)
    definitions = feature_definitions_hash(settings, usecase)  # load_model checked the model's contract is this
    vault = Vault.from_settings(settings)
    salt = variable(vault, PII_SALT_VARIABLE)
    objecting = _objecting(settings, usecase, typed, salt)
    stamp = {"model_version": model.version, "feature_service": usecase.features.feature_service,
             "definitions_sha256": definitions, "run_id": run_id,
             "runtime": f"{plan.runtime}/{plan.device}/{plan.threads}"}  # fmt: skip
    schema = output_schema(usecase)
    final = partition_file(settings, usecase, day)
    final.parent.mkdir(parents=True, exist_ok=True)
    partial = final.with_name(f".{final.name}.{os.getpid()}.partial")
    chunks = scored = 0
    try:
        with pq.ParquetWriter(partial, schema) as writer:
            for start, chunk in _chunks(typed, chunk_rows):
                review = {i - start for i in objecting if start <= i < start + len(chunk)}
                frame = _score_chunk(settings, usecase, model, predict, chunk, review, salt, day, stamp)
                writer.write_table(pa.Table.from_pandas(frame, schema=schema, preserve_index=False))
                chunks, scored = chunks + 1, scored + len(chunk) - len(review)
        digest = file_sha256(partial)
        _replace_in_warehouse(settings, usecase, day, partial)
        os.replace(partial, final)
    finally:
        partial.unlink(missing_ok=True)
    result = BatchResult(usecase.name, day.isoformat(), len(typed), scored, len(objecting), model.version,
                         usecase.features.feature_service, definitions, run_id, str(final), digest, table_name(usecase),
                         chunks, chunk_rows, plan.as_dict(), time.perf_counter() - started)  # fmt: skip
    ledger.append("batch.scored", f"{usecase.name}/{day.isoformat()}",
                  {k: v for k, v in asdict(result).items() if k not in ("usecase", "day", "seconds")})  # fmt: skip
    return result


def output_schema(usecase: UseCase) -> pa.Schema:
    """A partition's columns: the item's fields (personal data left out), when it is asked, the answer, who
    decided, and what answered it."""
    from serving.predictions import logged_fields

    entity = usecase.features.entity_id
    fields = [pa.field(entity, pa.string())]
    fields += [pa.field(name, _FIELD_TYPES[usecase.serving.fields[name].type])
               for name in logged_fields(usecase) if name != entity]  # fmt: skip
    fields += [
        pa.field("prediction_time", pa.timestamp("us", tz="UTC")),
        pa.field(usecase.prediction_column, pa.float64()),
    ]
    if usecase.serving.decision:
        fields.append(pa.field(usecase.serving.decision, pa.bool_()))
    fields += [
        pa.field("decision", pa.string()),
        pa.field("model_version", pa.int64()),
        pa.field("feature_service", pa.string()),
        pa.field("definitions_sha256", pa.string()),
        pa.field("run_id", pa.string()),
        pa.field("runtime", pa.string()),
        pa.field(DAY_COLUMN, pa.date32()),
    ]
    return pa.schema(fields)


def _validated(usecase: UseCase, items: list[dict]) -> list[dict]:
    """The items typed by the service's own request schema; BadItems naming the first bad ones and the fix."""
    from pydantic import ValidationError

    from serving.schema import item_model

    model, typed, bad = item_model(usecase), [], []
    for n, item in enumerate(items):
        try:
            typed.append(model.model_validate(item).model_dump())
        except ValidationError as exc:
            first = exc.errors()[0]
            bad.append(f"item {n} ({'.'.join(map(str, first['loc']))}: {first['msg']})")
    if bad:
        raise BadItems(
            f"{len(bad)} of {len(items)} {usecase.serving.batch} do not match the spec's serving.fields: "
            f"{'; '.join(bad[:5])}. Fix the source rows (or the spec's serving.replay mapping); nothing was written"
        )
    if not typed:
        raise BadItems(f"no {usecase.serving.batch} to score: the source's day is empty; nothing was written")
    ids = [str(item[usecase.features.entity_id]) for item in typed]
    if len(set(ids)) != len(ids):
        twice = sorted({i for i in ids if ids.count(i) > 1})[:5]
        raise BadItems(f"{usecase.features.entity_id} repeats ({', '.join(twice)}): each item needs its own id")
    return typed


def _objecting(settings: Settings, usecase: UseCase, items: list[dict], salt: str) -> set[int]:
    """The items of data subjects who object to automated decisions (UAE PDPL Art. 18), as the service finds them."""
    from pipelines.features.pii import hash_pii
    from pipelines.governance.subjects import registered

    subject = usecase.subject
    if subject is None or subject.request_field is None:
        return set()
    hashes = registered(settings, usecase.name, "objections")
    field = subject.request_field
    return {i for i, item in enumerate(items) if item.get(field) and hash_pii(str(item[field]), salt) in hashes}


def _predictor(settings: Settings, usecase: UseCase, model, plan, ledger):
    """The planned runtime's predictions, in calls of the planned size: the champion's verified ONNX graph on the
    planned threads, or its verified native booster (the gate held the two to its parity tolerance)."""
    from pipelines.compute.planner import XGBOOST

    if plan.runtime == XGBOOST:
        import xgboost

        from pipelines.orchestration.training import NATIVE_FILE
        from pipelines.registry.registry import Registry
        from pipelines.security.store import artifact_store
        from pipelines.security.vault import evaluation_vault

        registry = Registry(artifact_store(settings, ledger), evaluation_vault(settings), ledger)
        _, files = registry.load_files(usecase.name, model.version, [NATIVE_FILE[XGBOOST]])
        booster = xgboost.Booster(model_file=bytearray(files[NATIVE_FILE[XGBOOST]]))
        booster.set_param({"device": plan.device, "nthread": plan.threads})
        call = booster.inplace_predict
    else:
        call = model.scorer_with(plan.threads).predict

    def predict(x: np.ndarray) -> np.ndarray:
        if len(x) <= plan.call_rows:
            return np.asarray(call(x))
        return np.concatenate([np.asarray(call(x[i : i + plan.call_rows])) for i in range(0, len(x), plan.call_rows)])

    return predict


def _chunks(items: list[dict], size: int) -> Iterator[tuple[int, list[dict]]]:
    if size < 1:
        raise ValueError(f"chunk_rows must be at least 1, not {size}")
    for start in range(0, len(items), size):
        yield start, items[start : start + size]


def _score_chunk(
    settings, usecase: UseCase, model, predict, chunk: list[dict], review: set[int], salt: str, day, stamp
):
    import pandas as pd

    from serving.model import checked_predictions
    from serving.predictions import logged_fields

    entity, time_field = usecase.features.entity_id, usecase.serving.time
    frame = pd.DataFrame({name: [item[name] for item in chunk] for name in logged_fields(usecase)})
    frame[entity] = frame[entity].astype(str)
    local = pd.Series(pd.to_datetime([item[time_field].replace(tzinfo=None) for item in chunk]))
    x, instants = offline_matrix(settings, usecase, chunk, model.features, salt, local)
    prediction = np.full(len(chunk), np.nan)
    which = [i for i in range(len(chunk)) if i not in review]
    if which:
        prediction[which] = checked_predictions(predict(x[which]), len(which), usecase.task)
    frame["prediction_time"] = instants.to_numpy()
    frame[usecase.prediction_column] = prediction
    reviewed = np.zeros(len(chunk), dtype=bool)
    reviewed[list(review)] = True
    if usecase.serving.decision:
        decided = pd.array(prediction >= (model.threshold if model.threshold is not None else 0.5), dtype="boolean")
        decided[reviewed] = pd.NA
        frame[usecase.serving.decision] = decided
    frame["decision"] = np.where(reviewed, HUMAN_REVIEW, "model")
    for name, value in stamp.items():
        frame[name] = value
    frame["model_version"] = pd.array(np.where(reviewed, None, stamp["model_version"]), dtype="Int64")
    frame[DAY_COLUMN] = day
    return frame


def offline_matrix(settings, usecase: UseCase, items: list[dict], features: list[str], salt: str, local):
    """The items' model inputs as of each one's prediction time, from the offline store (training's point-in-time
    join over the FeatureService, each view's ttl applied) plus the request-time features; and those instants."""
    import pandas as pd

    from pipelines.features.pii import hash_pii
    from pipelines.features.request_time import prediction_time, time_features
    from pipelines.features.store import feature_store

    spec, serving = usecase.features, usecase.serving
    store = feature_store(settings)
    service = store.get_feature_service(spec.feature_service)
    entities = pd.DataFrame({key: [serving.key_of(key, item, lambda v: hash_pii(v, salt)) for item in items]
                             for key in spec.join_keys})  # fmt: skip
    instants = prediction_time(usecase.prediction, local.dt.normalize(), local, usecase.tz)
    entities["event_timestamp"] = instants.to_numpy()
    entities["_item"] = np.arange(len(items))
    stored = store.get_historical_features(entity_df=entities, features=service).to_df()
    stored = stored.sort_values("_item").set_index("_item").reindex(np.arange(len(items)))
    frame = stored[[c for c in stored.columns if c in features]].reset_index(drop=True)
    frame = frame.join(time_features(local, spec.request_time.prefix))
    for name in spec.request_inputs:
        frame[name] = [item[name] for item in items]
    return frame.reindex(columns=features).to_numpy(dtype=np.float32, na_value=np.nan), instants


def _replace_in_warehouse(settings: Settings, usecase: UseCase, day: dt.date, path: Path) -> None:
    """The day's rows of `batch.<use case>` replaced by the partition's, in one transaction."""
    from pipelines.ingest.warehouse import create_table, placeholder, transaction

    table = pq.ParquetFile(path)
    with transaction(settings, BATCH_SCHEMA) as (cursor, insert):
        cursor.execute(create_table(BATCH_SCHEMA, usecase.name, table.schema_arrow))
        cursor.execute(f"DELETE FROM {table_name(usecase)} WHERE {DAY_COLUMN} = {placeholder(settings)}", (day,))  # nosec B608 # names from the validated spec
        for batch in table.iter_batches(batch_size=CHUNK_ROWS):
            insert(usecase.name, pa.Table.from_batches([batch]))


def open_days(settings: Settings, usecase: UseCase) -> list[dt.date]:
    """The scored days not landed yet (their items are still ahead of the platform's data): what a new champion
    scores again."""
    from pipelines.ingest.landing import landed_through

    root = settings.data_root / "batch" / usecase.name
    scored = sorted(
        dt.date.fromisoformat(p.parent.name.removeprefix("date=")) for p in root.glob("date=*/scores.parquet")
    )
    newest = landed_through(settings, usecase)
    return [d for d in scored if newest is None or d > newest]


def scoring_days(
    settings: Settings, usecase: UseCase, params: dict, run_day: dt.date, champion_changed: bool
) -> list[dt.date]:
    """The days a batch run scores: its `day` parameter; else, when a new champion started it, the open days
    (scored, not landed yet); else the day after the run's (tomorrow's published schedule)."""
    if params.get("day"):
        return [dt.date.fromisoformat(str(params["day"]))]
    if champion_changed:
        return open_days(settings, usecase)
    return [run_day + dt.timedelta(days=1)]
