"""A Celery worker in the full image joins the host's Airflow: the scheduler on the host queues a day of the ingest
DAG on the host's Redis broker, the worker in the container takes every task, runs it as uid 10001 against the
host's OpenBao and the data root, and each task's success lands in the platform's audit ledger."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import time

import pytest

from pipelines.orchestration import local_airflow
from pipelines.orchestration.airflow_env import airflow_environment
from pipelines.processes import port_open
from pipelines.security.audit import audit_ledger
from tests.conftest import FIRST_DAY, FLIGHT_DELAY, fresh_postgres_database, make_settings, require_service
from tests.container.conftest import container, container_environment

pytestmark = pytest.mark.container
BROKER_DB = 11  # a Redis database of its own (tests/e2e/test_celery_executor.py uses 9)


@contextlib.contextmanager
def _shared_umask():
    """Files the host's Airflow makes during the test are writable by the container's uid 10001 too."""
    before = os.umask(0)
    try:
        yield
    finally:
        os.umask(before)


def test_a_celery_worker_in_the_image_runs_the_hosts_ingest_tasks(images, engine, openbao, tmp_path):
    require_service(port_open(6379), "Redis (the Celery broker) is not reachable on 127.0.0.1:6379")
    import redis

    redis.Redis.from_url(f"redis://127.0.0.1:6379/{BROKER_DB}").flushdb()
    with fresh_postgres_database("airflow_container") as url, _shared_umask():
        settings = make_settings(
            tmp_path / "var", airflow_home=tmp_path / "airflow", airflow_executor="CeleryExecutor",
            airflow_metadata_url=url.replace("postgresql://", "postgresql+psycopg://"),
            celery_broker_url=f"redis://127.0.0.1:6379/{BROKER_DB}",
        )  # fmt: skip
        local_airflow.prepare(settings)
        subprocess.run(["chmod", "-R", "a+rwX", str(tmp_path)], check=True)
        env = container_environment(airflow_environment(settings))
        command = ["celery", "worker", "--celery-hostname", "container@%h", "--concurrency", "1", "--skip-serve-logs"]
        log = tmp_path / "worker.log"
        with (
            local_airflow.scheduling(settings) as scheduler,
            container(
                engine, images["runtime"].image, env, [f"{tmp_path}:{tmp_path}"], command, log, entrypoint="airflow"
            ) as name,
        ):
            deadline = time.monotonic() + 180
            while "ready." not in (logs := engine("logs", name, capture_output=True, text=True)).stdout + logs.stderr:
                assert time.monotonic() < deadline, f"the worker did not start:\n{logs.stdout[-3000:]}{logs.stderr}"
                time.sleep(2)
            user = engine("exec", name, "python", "-c", "import os; print(os.getuid())", capture_output=True, text=True)
            runs = scheduler.backfill("flight_delay_ingest", FIRST_DAY, FIRST_DAY, FLIGHT_DELAY.tz)
    assert user.stdout.strip() == "10001"
    assert [r["state"] for r in runs] == ["success"], log.read_text()[-4000:]
    worker_log = log.read_text()
    received = re.findall(r"Task [\w.]*execute_workload\[[^\]]+\] received", worker_log)
    done = {r.subject.split("/")[-1] for r in audit_ledger(settings).records()
            if r.action == "task.success" and r.subject.startswith("flight_delay_ingest")}  # fmt: skip
    assert {"land", "validate", "transform", "materialize"} <= done
    assert len(received) >= len(done), "every task went through the container's worker"
    assert (settings.data_root / "raw" / "flights").stat().st_uid == 10001, "the day was landed inside the container"
