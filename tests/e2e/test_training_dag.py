"""The training DAG run by Airflow itself (`airflow dags test`) on the session's five built days:
dataset → two candidates (mapped over the families, in the gpu pool) → gate → registry, with
the model asset emitted and every task in the audit ledger."""

from __future__ import annotations

import json
import sqlite3

import pytest

from pipelines.orchestration import local_airflow
from pipelines.registry.registry import Registry
from pipelines.security.audit import audit_ledger
from pipelines.security.store import artifact_store
from pipelines.security.vault import Vault
from pipelines.settings import load_settings

pytestmark = pytest.mark.e2e
DAG_ID = "flight_delay_training"


@pytest.fixture(scope="module")
def dag_run(built, tmp_path_factory):
    root = tmp_path_factory.mktemp("training-dag")
    settings = load_settings(data_root=built.settings.data_root, airflow_home=root / "airflow",
                             artifact_store_uri=(root / "artifacts").as_uri(),
                             train_days=3, validation_days=1, holdout_days=1)  # fmt: skip
    local_airflow.prepare(settings)
    conf = json.dumps({"last_day": built.days[-1].isoformat()})
    done = local_airflow.airflow(settings, "dags", "test", DAG_ID, "-c", conf, check=False)
    return settings, done


def _states(settings) -> dict[str, list[str]]:
    with sqlite3.connect(settings.airflow_dir / "airflow.db") as con:
        rows = con.execute("SELECT task_id, state FROM task_instance WHERE dag_id = ?", (DAG_ID,)).fetchall()
    states: dict[str, list[str]] = {}
    for task_id, state in rows:
        states.setdefault(task_id, []).append(state)
    return states


def test_the_dag_trains_gates_and_registers_both_families(dag_run):
    settings, done = dag_run
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert _states(settings) == {"dataset": ["success"], "train": ["success", "success"],
                                 "gate_and_register": ["success"]}  # fmt: skip
    ledger = audit_ledger(settings)
    registry = Registry(artifact_store(settings, ledger), Vault.from_settings(settings), ledger)
    manifests = [registry.manifest("flight_delay", v) for v in registry.versions("flight_delay")]
    assert sorted(m["family"] for m in manifests) == ["mlp", "xgboost"]
    passing = sorted((m for m in manifests if m["gate"]["passed"]), key=lambda m: -m["metrics"]["holdout"]["roc_auc"])
    champion = registry.alias("flight_delay", "champion")
    assert (champion["version"] if champion else None) == (passing[0]["version"] if passing else None)
    assert "Model flight_delay" in done.stdout + done.stderr  # the gate summary is in the task log


def test_the_model_asset_is_emitted_and_every_task_is_audited(dag_run):
    settings, _ = dag_run
    with sqlite3.connect(settings.airflow_dir / "airflow.db") as con:
        events = con.execute(
            "SELECT e.extra FROM asset_event e JOIN asset a ON a.id = e.asset_id WHERE a.name = ?",
            ("flight_delay_model",),
        ).fetchall()
    assert len(events) == 1
    extra = json.loads(events[0][0])
    assert extra["model"] == "flight_delay" and set(extra) <= {"model", "champion", "challenger"}
    ledger = audit_ledger(settings)
    ledger.verify()
    done = {
        r.subject.split("/")[-1]
        for r in ledger.records()
        if r.action == "task.success" and r.subject.startswith(DAG_ID)
    }
    assert done == {"dataset", "train", "gate_and_register"}
    assert [r.details["passed"] for r in ledger.records() if r.action == "gate.decision"]
