"""A day operated on the real-time path, end to end: a champion trained to predict two hours before
departure (prediction.lead_time PT2H), the stream processor running in its own process group, the
day's flights asked through the real model service at their prediction times while the event clock
replays the weather up to each instant; then the ingest DAG lands the day through the scheduler and
its reconcile_stream task compares the stream's values with the batch's marts; then the monitoring DAG.
What the service logged for each flight equals training's point-in-time join at its prediction time."""

from __future__ import annotations

import datetime as dt
import sqlite3

import numpy as np
import pytest

from pipelines.features.store import build_training_set, materialize, training_entities
from pipelines.orchestration import local_airflow, training
from pipelines.orchestration.bulk import build_days
from pipelines.orchestration.operations import operate, real_time
from pipelines.usecases.spec import resolve_usecase, windows, with_overrides
from serving.auth import create_key
from serving.local import wait_ready
from serving.predictions import read as read_predictions
from tests.conftest import free_port, make_settings, require_service
from tests.e2e.conftest import serve

pytestmark = pytest.mark.e2e

MODEL, FIRST, SERVED = "flight_delay", dt.date(2013, 1, 1), dt.date(2013, 1, 8)
BROKER_URL = "redis://127.0.0.1:6379/13"  # a database of its own, emptied here


@pytest.fixture(scope="module")
def operated(openbao, tmp_path_factory):
    import redis

    try:
        redis.Redis.from_url(BROKER_URL, socket_connect_timeout=3).flushdb()
    except redis.RedisError as exc:
        require_service(False, f"Redis is not reachable at {BROKER_URL}: {exc}")
    root = tmp_path_factory.mktemp("realtime")
    base = make_settings(root / "var", airflow_home=root / "airflow", stream_broker_url=BROKER_URL,
                         stream_processor_port=free_port())  # fmt: skip
    settings = with_overrides(base, MODEL, {"prediction.lead_time": "PT2H", **windows(4, 1, 2),
                                            "gate.limits.roc_auc.min": 0.55})  # fmt: skip
    usecase = resolve_usecase(settings, MODEL)
    build_days(settings, usecase, FIRST, SERVED - dt.timedelta(days=1), validate=False)
    folder = training.prepare_run(settings, MODEL, SERVED - dt.timedelta(days=1), "first-week")
    training.train_candidate(settings, folder, "xgboost")
    assert training.gate_and_register(settings, folder, ["xgboost"]).get("champion")
    materialize(settings, usecase, dt.datetime.combine(SERVED, dt.time(), usecase.tz))  # the batch, to 00:00
    local_airflow.prepare(settings)
    key = create_key(openbao.root, "realtime-consumers", ["predict"])
    with serve(settings, openbao, root) as service, real_time(settings, usecase) as realtime:
        assert realtime is not None, "a use case with streams and a lead time runs the stream processor"
        wait_ready(service)
        (day,) = operate(settings, usecase, SERVED, SERVED, service, key, realtime=realtime)
    return settings, usecase, day


def test_every_flight_is_answered_at_its_prediction_time_with_the_stream_caught_up(operated):
    settings, usecase, day = operated
    assert "(0 failed)" in day.served and day.monitoring["assessment"]["rows"] > 500, day.served
    # published from a day before the first flight's instant to the last one's; each written once
    assert "dead-lettered 0, lag 0" in day.stream, day.stream
    published = int(day.stream.split("published ")[1].split(",")[0])
    processed = int(day.stream.split("processed ")[1].split(",")[0])
    assert published == processed > 100, day.stream


def test_what_the_service_read_equals_the_training_join_at_each_prediction_time(operated):
    settings, usecase, _ = operated
    logged = read_predictions(settings, usecase)
    logged = logged[logged.variant == "champion"].set_index("flight_id")
    known = dt.datetime.combine(SERVED + dt.timedelta(days=2), dt.time(), usecase.tz)
    entities = training_entities(settings, usecase, SERVED, SERVED, known)
    entities = entities[entities.flight_id.isin(logged.index)].drop(columns=["is_late_arrival", "label_available_at"])
    joined = build_training_set(settings, usecase, entities).set_index("flight_id")
    weather = ["temperature_f", "humidity_pct", "pressure_mb", "wind_speed_mph", "visibility_mi"]
    stored = [c for c in joined.columns if c in logged.columns and c not in usecase.features.request_features
              and c not in usecase.features.join_keys and c != usecase.features.request_time.column]  # fmt: skip
    assert set(weather) <= set(stored) and len(entities) > 700
    for feature in stored:
        served = logged.loc[entities.flight_id, feature].astype("float64")
        np.testing.assert_allclose(served, joined.loc[entities.flight_id, feature].astype("float64"), rtol=1e-6,
                                   err_msg=feature)  # fmt: skip
    # not one reading a day: at the start of the day every flight of an airport would get the same weather
    readings = logged.loc[entities.flight_id].groupby("origin")["temperature_f"].nunique()
    assert (readings >= 5).all(), readings  # 8 to 13 distinct readings an airport on 8 January


def test_the_ingest_dag_reconciled_the_streamed_day_with_the_batch(operated):
    settings, _, _ = operated
    with sqlite3.connect(settings.airflow_dir / "airflow.db") as con:
        states = dict(con.execute(
            "SELECT task_id, state FROM task_instance WHERE dag_id = 'flight_delay_ingest' AND run_id IN "
            "(SELECT run_id FROM dag_run WHERE date(logical_date) = '2013-01-08')"
        ).fetchall())  # fmt: skip
    # success, not skipped: the stream's values of the day were there, and equal to the batch's
    assert states == {"land": "success", "validate": "success", "transform": "success",
                      "materialize": "success", "reconcile_stream": "success"}  # fmt: skip
