"""Batch inference on a real built platform, a real OpenBao and real Airflow: the batch DAG scores the next day's
published schedule with the verified champion into a Parquet partition and the warehouse, with the model version,
the FeatureService hash and the run on every row; a batch answer is the model's answer on the features training's
point-in-time join gives the same flight; a re-run replaces the partition, a tampered champion or a bad item writes
nothing; an objecting subject is not scored; a new champion re-scores the days not landed yet."""

from __future__ import annotations

import datetime as dt
import shutil

import duckdb
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from pydantic import SecretStr

from pipelines.batch.scoring import (
    BadItems,
    open_days,
    partition_file,
    score_day,
    scoring_days,
    table_name,
    warehouse_items,
)
from pipelines.compute.planner import BATCH_SIZES, Calibration, calibration_path, hardware
from pipelines.errors import ArtifactTampered
from pipelines.features.store import build_training_set, training_entities
from pipelines.governance.subjects import object_to_automated_decisions
from pipelines.orchestration import local_airflow
from pipelines.registry.registry import Registry
from pipelines.security.audit import audit_ledger
from pipelines.security.store import artifact_store
from pipelines.security.vault import KV_MOUNT, issue_credentials
from pipelines.training.dataset import feature_columns, feature_definitions_hash
from serving.model import load_model
from serving.replay import day_requests
from tests.conftest import FLIGHT_DELAY, make_settings
from tests.e2e.conftest import dags_test, tampered

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def platform(built, trained_models, tmp_path_factory):
    """A copy of the built platform (January's first days landed) and of the trained store, with Airflow."""
    root = tmp_path_factory.mktemp("batch")
    shutil.copytree(built.settings.data_root, root / "var")
    shutil.copytree(trained_models[0], root / "store")
    settings = make_settings(root / "var", artifact_store_uri=(root / "store").as_uri())
    local_airflow.prepare(settings)
    return settings, trained_models[1]["champion"]


def _warehouse(settings, sql: str):
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        return con.execute(sql).fetchall()


def test_the_batch_dag_scores_the_next_days_schedule_with_the_champion(platform, built):
    settings, champion = platform
    run_day = built.days[-1]
    day = run_day + dt.timedelta(days=1)  # not landed: its flights are still ahead of the platform's data
    assert dags_test(settings, FLIGHT_DELAY, "batch_scoring", run_day) == {"score": "success"}
    rows = pq.read_table(partition_file(settings, FLIGHT_DELAY, day)).to_pandas()
    schedule = day_requests(settings, FLIGHT_DELAY, day)
    assert sorted(rows["flight_id"]) == sorted(r["flight_id"] for r in schedule) and len(rows) > 500
    assert set(rows["model_version"]) == {champion} and set(rows["decision"]) == {"model"}
    assert set(rows["feature_service"]) == {FLIGHT_DELAY.features.feature_service}
    assert set(rows["definitions_sha256"]) == {feature_definitions_hash(settings, FLIGHT_DELAY)}
    [run_id] = set(rows["run_id"])
    assert run_id.startswith("manual__")  # `airflow dags test`'s run
    assert rows["probability"].between(0, 1).all() and rows["late"].notna().all()
    assert "tailnum" not in rows.columns  # personal data is used hashed, never written
    midnight = pd.Timestamp(dt.datetime.combine(day, dt.time(), FLIGHT_DELAY.tz)).tz_convert("UTC")
    assert (rows["prediction_time"] == midnight).all()  # the tests' lead time: start_of_day
    assert _warehouse(
        settings, f"SELECT count(*), min(run_id) FROM {table_name(FLIGHT_DELAY)} WHERE day = '{day}'"
    ) == [(len(rows), run_id)]
    [record] = [r for r in audit_ledger(settings).records() if r.action == "batch.scored"]
    assert record.subject == f"flight_delay/{day}" and record.details["rows"] == len(rows)
    assert record.details["model_version"] == champion and len(record.details["sha256"]) == 64


def test_a_batch_answer_is_the_models_answer_on_trainings_point_in_time_features(platform, built, openbao):
    settings, champion = platform
    day = built.days[-1]  # landed: its flights are in the entity mart, with the features training joined for them
    score_day(settings, FLIGHT_DELAY, day, "parity")
    batch = pq.read_table(partition_file(settings, FLIGHT_DELAY, day)).to_pandas().set_index("flight_id")
    entities = training_entities(settings, FLIGHT_DELAY, day, day, dt.datetime(2100, 1, 1, tzinfo=dt.UTC))
    label = FLIGHT_DELAY.features.label
    training = build_training_set(settings, FLIGHT_DELAY, entities.drop(columns=[label.column, label.available_at]))
    ledger = audit_ledger(settings)
    model = load_model(settings, FLIGHT_DELAY, artifact_store(settings, ledger), openbao.role("evaluation"), ledger)
    assert model.features == feature_columns(settings, FLIGHT_DELAY)
    expected = pd.Series(model.predict(training[model.features].to_numpy(dtype=np.float32)),
                         index=training["flight_id"])  # fmt: skip
    common = expected.index.intersection(batch.index)
    assert len(common) > 500 and len(common) >= 0.95 * len(batch)  # the mart leaves out what never flew
    np.testing.assert_allclose(batch.loc[common, "probability"], expected.loc[common], atol=1e-6)


def test_a_rerun_replaces_the_partition_and_a_tampered_champion_writes_nothing(platform, built, openbao):
    settings, champion = platform
    day = built.days[-1] + dt.timedelta(days=2)
    path = partition_file(settings, FLIGHT_DELAY, day)
    first = score_day(settings, FLIGHT_DELAY, day, "first", chunk_rows=300)
    second = score_day(settings, FLIGHT_DELAY, day, "second", chunk_rows=300)
    assert first.rows == second.rows and second.chunks == -(-second.rows // 300) > 1
    count = f"SELECT count(*), min(run_id), max(run_id) FROM {table_name(FLIGHT_DELAY)} WHERE day = '{day}'"
    assert _warehouse(settings, count) == [(second.rows, "second", "second")]
    assert set(pq.read_table(path)["run_id"].to_pylist()) == {"second"}
    before = path.read_bytes()

    ledger = audit_ledger(settings)
    store = artifact_store(settings, ledger)
    digest = Registry(store, openbao.role("evaluation"), ledger).manifest("flight_delay", champion)["files"][
        "model.onnx"
    ]["sha256"]
    with tampered(store, digest), pytest.raises(ArtifactTampered):
        score_day(settings, FLIGHT_DELAY, day, "tampered")
    assert path.read_bytes() == before and _warehouse(settings, count) == [(second.rows, "second", "second")]
    assert not list(path.parent.glob(".*partial"))


def test_bad_items_write_nothing_and_an_objecting_subject_is_not_scored(platform, built, openbao):
    settings, _ = platform
    day = built.days[-1] + dt.timedelta(days=3)
    items = day_requests(settings, FLIGHT_DELAY, day)
    broken = [dict(item) for item in items]
    broken[7]["carrier"] = "not a carrier"
    broken[9]["scheduled_departure"] = "tomorrow"
    with pytest.raises(BadItems, match=r"2 of \d+ flights .*item 7 \(carrier: .*item 9 \(scheduled_departure"):
        score_day(settings, FLIGHT_DELAY, day, "broken", items=broken)
    assert not partition_file(settings, FLIGHT_DELAY, day).exists()
    assert _warehouse(settings, f"SELECT count(*) FROM {table_name(FLIGHT_DELAY)} WHERE day = '{day}'") == [(0,)]

    tailnum = pd.Series([i["tailnum"] for i in items]).value_counts().index[0]
    role_id, secret_id = issue_credentials(openbao.root, "privacy")  # as `platform objection` runs
    privacy = settings.model_copy(update={"vault_role_id": role_id, "vault_secret_id": SecretStr(secret_id)})
    object_to_automated_decisions(privacy, FLIGHT_DELAY, tailnum)
    try:
        result = score_day(settings, FLIGHT_DELAY, day, "objection")
    finally:
        openbao.root.client.secrets.kv.v2.delete_metadata_and_all_versions(
            "governance/flight_delay/objections", mount_point=KV_MOUNT
        )
    rows = pq.read_table(partition_file(settings, FLIGHT_DELAY, day)).to_pandas().set_index("flight_id")
    theirs = [i["flight_id"] for i in items if i["tailnum"] == tailnum]
    assert result.human_review == len(theirs) > 1 and result.scored == len(items) - len(theirs)
    reviewed = rows.loc[theirs]
    assert set(reviewed["decision"]) == {"human_review"}
    assert reviewed[["probability", "late", "model_version"]].isna().all().all()
    assert rows.drop(index=theirs)["probability"].notna().all()


def test_a_warehouse_table_of_items_is_scored_like_the_schedule(platform, built):
    settings, _ = platform
    day = built.days[-1] + dt.timedelta(days=1)
    items = pd.DataFrame(day_requests(settings, FLIGHT_DELAY, day))
    items["scheduled_departure"] = pd.to_datetime(items["scheduled_departure"])
    with duckdb.connect(str(settings.warehouse_path)) as con:
        con.execute("CREATE SCHEMA IF NOT EXISTS partner")
        con.register("incoming", items)
        con.execute("CREATE OR REPLACE TABLE partner.schedule AS SELECT * FROM incoming")
    schedule = pq.read_table(partition_file(settings, FLIGHT_DELAY, day)).to_pandas()
    score_day(
        settings, FLIGHT_DELAY, day, "table", items=warehouse_items(settings, FLIGHT_DELAY, "partner.schedule", day)
    )
    table = pq.read_table(partition_file(settings, FLIGHT_DELAY, day)).to_pandas()
    columns = ["flight_id", "probability", "late"]
    pd.testing.assert_frame_equal(
        table.sort_values("flight_id")[columns].reset_index(drop=True),
        schedule.sort_values("flight_id")[columns].reset_index(drop=True),
    )
    with pytest.raises(BadItems, match="is not schema.table"):
        warehouse_items(settings, FLIGHT_DELAY, "partner.schedule; DROP TABLE x", day)


def test_a_new_champion_rescores_the_days_not_landed_yet(platform, built):
    settings, _ = platform
    landed = built.days[-1]
    ahead = [landed + dt.timedelta(days=n) for n in (1, 2, 3)]  # scored, not landed
    for day in ahead:
        if not partition_file(settings, FLIGHT_DELAY, day).exists():  # run alone: the tests above scored them
            score_day(settings, FLIGHT_DELAY, day, "ahead")
    assert open_days(settings, FLIGHT_DELAY) == ahead
    assert scoring_days(settings, FLIGHT_DELAY, {}, landed, champion_changed=True) == ahead
    assert scoring_days(settings, FLIGHT_DELAY, {}, landed, champion_changed=False) == [ahead[0]]
    assert scoring_days(settings, FLIGHT_DELAY, {"day": "2013-01-02"}, landed, champion_changed=False) == [
        dt.date(2013, 1, 2)
    ]


def test_the_planners_choice_scores_the_day_and_every_row_says_which(platform, built):
    """Calibrations of this machine (its own hardware fingerprint) on which the native booster, then ONNX Runtime,
    is the faster: the day is scored with each, the rows and the ledger say which, and both give the champion's
    answers (the gate held the two to parity)."""
    settings, _ = platform
    day = built.days[-1]
    scored = {}
    for faster in ("xgboost", "onnxruntime"):
        slow, quick = (5e-3, 1e-5), (1e-6, 1e-8)  # seconds per call, per row
        curves = {"onnxruntime/cpu/1": quick if faster == "onnxruntime" else slow,
                  "xgboost/cpu/2": quick if faster == "xgboost" else slow}  # fmt: skip
        scoring = {key: {str(n): fixed + per_row * n for n in BATCH_SIZES} for key, (fixed, per_row) in curves.items()}
        Calibration(hardware(), 23, "2026-12-06T00:00:00+00:00", scoring, {}).save(calibration_path(settings))
        try:
            result = score_day(settings, FLIGHT_DELAY, day, f"planned-{faster}")
        finally:
            calibration_path(settings).unlink()
        rows = pq.read_table(partition_file(settings, FLIGHT_DELAY, day)).to_pandas().set_index("flight_id")
        assert result.plan["runtime"] == faster and set(rows["runtime"]) == {f"{faster}/cpu/{result.plan['threads']}"}
        assert faster in result.render()
        [record] = [r for r in audit_ledger(settings).records() if r.details.get("run_id") == f"planned-{faster}"]
        assert record.details["plan"]["runtime"] == faster
        scored[faster] = rows["probability"]
    np.testing.assert_allclose(scored["xgboost"], scored["onnxruntime"].loc[scored["xgboost"].index], atol=1e-5)
