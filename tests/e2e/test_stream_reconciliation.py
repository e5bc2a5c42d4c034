"""Event-driven reconciliation through Airflow: the stream processor (its own process) runs past the end of a
day the batch has built and announces the day on the broker; the asset watcher in Airflow's real triggerer
turns the announcement into an asset event, the scheduler runs the reconciliation DAG on it, and its task
compares every feature row of the day with the batch's marts (equal). No sensor, no schedule: only the event."""

from __future__ import annotations

import datetime as dt
import shutil
import time

import pytest

from pipelines.orchestration import local_airflow
from pipelines.orchestration.stream_days import GROUP
from pipelines.streaming.broker import days_key
from pipelines.streaming.replay import replay_events
from pipelines.streaming.service import health, running_processor
from pipelines.usecases.spec import resolve_usecase
from tests.conftest import FLIGHT_DELAY, free_port, make_settings, require_service

pytestmark = pytest.mark.e2e

BROKER_URL = "redis://127.0.0.1:6379/15"  # a database of its own, emptied here
DAY = dt.date(2013, 1, 3)  # built by the batch (tests/integration/conftest.py BUILT_DAYS), then streamed
DAG_ID = FLIGHT_DELAY.dag_id("reconciliation")


def _local(day: dt.date, hour: int) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour), FLIGHT_DELAY.tz)


@pytest.fixture(scope="module")
def reconciled(built, tmp_path_factory) -> dict:
    import redis

    try:
        broker = redis.Redis.from_url(BROKER_URL, decode_responses=True, socket_connect_timeout=3)
        broker.flushdb()
    except redis.RedisError as exc:
        require_service(False, f"Redis is not reachable at {BROKER_URL}: {exc}")
    root = tmp_path_factory.mktemp("stream-days")
    shutil.copytree(built.settings.data_root, root / "var")
    settings = make_settings(root / "var", airflow_home=root / "airflow", stream_broker_url=BROKER_URL,
                             stream_processor_port=free_port())  # fmt: skip
    usecase = resolve_usecase(settings, FLIGHT_DELAY.name)
    local_airflow.prepare(settings)
    local_airflow.airflow(settings, "dags", "unpause", DAG_ID)
    local_airflow.airflow(settings, "dags", "reserialize")  # an asset's watcher is registered once its DAG runs
    with running_processor(settings, usecase, log=root / "processor.log"):
        replay_events(settings, usecase, _local(DAY, 0), _local(DAY + dt.timedelta(days=1), 6), 0)
        deadline = time.monotonic() + 60
        while health(settings.stream_processor_port).get("complete_through") != DAY.isoformat():
            assert time.monotonic() < deadline, health(settings.stream_processor_port)
            time.sleep(0.5)
    with local_airflow.scheduling(settings, triggerer=True) as airflow_up:
        api, runs, deadline = airflow_up.api, [], time.monotonic() + 300
        while not (runs := [r for r in api.get(f"/api/v2/dags/{DAG_ID}/dagRuns").json()["dag_runs"]
                            if r["state"] in ("success", "failed")]):  # fmt: skip
            assert time.monotonic() < deadline, f"no {DAG_ID} run within 300 s: see {settings.airflow_dir}/*.log"
            time.sleep(2)
        run = runs[0]
        said = api.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{run['dag_run_id']}/taskInstances/reconcile/xcomEntries/"
                       "return_value").json()  # fmt: skip
        events = api.get("/api/v2/assets/events", params={"name_pattern": f"{FLIGHT_DELAY.name}_stream_days"}).json()
        deadline = time.monotonic() + 60  # acknowledged once Airflow confirmed the event stored
        while broker.xpending(days_key(settings, FLIGHT_DELAY.name), GROUP)["pending"]:
            assert time.monotonic() < deadline, "the watcher never acknowledged the announced day"
            time.sleep(1)
    return {"run": run, "said": said, "events": events, "announced": broker.xrange(days_key(settings, "flight_delay"))}


def test_the_processor_announces_the_day_once_the_streams_have_passed_it(reconciled):
    assert [fields["day"] for _, fields in reconciled["announced"]] == [DAY.isoformat()]


def test_the_announcement_runs_the_reconciliation_dag_through_the_asset_watcher(reconciled):
    run, [event] = reconciled["run"], reconciled["events"]["asset_events"]
    assert run["state"] == "success" and run["run_type"] == "asset_triggered", run
    assert event["extra"]["from_trigger"] is True and event["extra"]["payload"]["day"] == DAY.isoformat()


def test_the_day_is_compared_whole_and_equal_to_the_batch(reconciled):
    said = reconciled["said"]["value"]
    assert any(line.startswith(f"{DAY}: weather_observations -> origin_weather: 72 rows") for line in said), said
    assert all("equal to the batch's" in line for line in said), said
    assert len(said) == 3, "the weather, departures and arrivals streams"
