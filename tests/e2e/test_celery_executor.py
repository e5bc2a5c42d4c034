"""Scale-out on one machine: the ingest and training DAGs under CeleryExecutor, with a Redis broker,
Airflow's metadata (and Celery's task results) in PostgreSQL, and two Celery workers, through the
real scheduler and API server. The training run: dataset → two candidates (mapped over the families,
in the gpu pool) → gate → registry, the model asset emitted and every task in the audit ledger."""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest
import sqlalchemy

from pipelines.errors import PlatformError
from pipelines.orchestration import local_airflow
from pipelines.orchestration.airflow_env import airflow_environment
from pipelines.processes import port_open
from pipelines.registry.registry import Registry
from pipelines.security.audit import audit_ledger
from pipelines.security.store import artifact_store
from pipelines.security.vault import Vault
from pipelines.usecases.spec import windows
from tests.conftest import FIRST_DAY, FLIGHT_DELAY, fresh_postgres_database, make_settings, require_service

pytestmark = pytest.mark.e2e
DAYS = [FIRST_DAY + dt.timedelta(days=i) for i in range(3)]
BROKER_DB = 9  # a Redis database of its own: Feast's online store uses 0


@pytest.fixture(scope="module")
def celery_runs(openbao, tmp_path_factory):
    require_service(port_open(6379), "Redis (the Celery broker) is not reachable on 127.0.0.1:6379")
    import redis

    root = tmp_path_factory.mktemp("celery")
    redis.Redis.from_url(f"redis://127.0.0.1:6379/{BROKER_DB}").flushdb()
    with fresh_postgres_database("airflow_celery") as url:
        settings = make_settings(
            root / "var", airflow_home=root / "airflow", airflow_executor="CeleryExecutor",
            airflow_metadata_url=url.replace("postgresql://", "postgresql+psycopg://"),
            celery_broker_url=f"redis://127.0.0.1:6379/{BROKER_DB}",
            usecase_overrides={"flight_delay": windows(1, 1, 1)},
        )  # fmt: skip
        local_airflow.prepare(settings)
        with local_airflow.scheduling(settings) as scheduler, local_airflow.celery_workers(settings, 2) as logs:
            ingest = scheduler.backfill("flight_delay_ingest", DAYS[0], DAYS[-1], FLIGHT_DELAY.tz)
            training = scheduler.trigger("flight_delay_training", {"last_day": DAYS[-1].isoformat()})
        engine = sqlalchemy.create_engine(url)
        with engine.connect() as con:
            instances = con.execute(sqlalchemy.text(
                "SELECT dag_id, task_id, state FROM task_instance")).fetchall()  # fmt: skip
            events = con.execute(sqlalchemy.text(
                "SELECT e.extra FROM asset_event e JOIN asset a ON a.id = e.asset_id "
                "WHERE a.name = 'flight_delay_model'")).fetchall()  # fmt: skip
        engine.dispose()
        yield settings, ingest, training, instances, [log.read_text() for log in logs], [e.extra for e in events]


def test_the_ingest_and_training_dags_run_on_two_celery_workers(celery_runs):
    settings, ingest, training, instances, logs, _ = celery_runs
    assert [r["state"] for r in ingest] == ["success"] * len(DAYS)
    assert training["state"] == "success" and training["conf"] == {"last_day": DAYS[-1].isoformat()}
    ran = [i for i in instances if i.state == "success"]
    skipped = [i for i in instances if i.state == "skipped"]
    assert {i.dag_id for i in ran} == {"flight_delay_ingest", "flight_delay_training"}
    assert len(ran) >= 4 * len(DAYS) + 4  # land, validate, transform, materialize; 4 training
    # no stream processor ran: each day's reconciliation found nothing to compare, and said so
    assert sorted(i.task_id for i in skipped) == ["reconcile_stream"] * len(DAYS)
    assert len(ran) + len(skipped) == len(instances)
    # every task instance went through Celery: each worker received some, together all of them
    received = [len(re.findall(r"Task [\w.]*execute_workload\[[^\]]+\] received", log)) for log in logs]
    assert all(n > 0 for n in received) and sum(received) == len(instances), received
    assert (settings.airflow_dir / "logs" / "dag_id=flight_delay_training").is_dir()


def test_the_training_run_registers_both_families_emits_the_model_asset_and_is_audited(celery_runs):
    settings, *_, events = celery_runs
    ledger = audit_ledger(settings)
    ledger.verify()
    registry = Registry(artifact_store(settings, ledger), Vault.from_settings(settings), ledger)
    manifests = [registry.manifest("flight_delay", v) for v in registry.versions("flight_delay")]
    assert sorted(m["family"] for m in manifests) == ["mlp", "xgboost"]
    passing = sorted((m for m in manifests if m["gate"]["passed"]), key=lambda m: -m["metrics"]["holdout"]["roc_auc"])
    champion = registry.alias("flight_delay", "champion")
    assert (champion["version"] if champion else None) == (passing[0]["version"] if passing else None)
    [extra] = events
    extra = extra if isinstance(extra, dict) else json.loads(extra)
    assert extra["model"] == "flight_delay" and set(extra) <= {"model", "champion", "challenger"}
    done = {r.subject.split("/")[-1] for r in ledger.records()
            if r.action == "task.success" and r.subject.startswith("flight_delay_training")}  # fmt: skip
    assert done == {"dataset", "train", "gate_and_register"}
    assert len([r for r in ledger.records() if r.action == "gate.decision"]) == 2


def test_celery_without_postgresql_metadata_is_refused_with_the_fix(tmp_path):
    settings = make_settings(tmp_path / "var", airflow_executor="CeleryExecutor")
    with pytest.raises(PlatformError, match="PLATFORM_AIRFLOW_METADATA_URL=postgresql"):
        airflow_environment(settings)
