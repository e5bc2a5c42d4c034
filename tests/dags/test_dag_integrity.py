"""Every DAG file imports cleanly, declares what operators need to see, and keeps its top level
light (its parse time is a benchmark: bench/orchestration.py)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from pipelines.settings import REPO_ROOT
from pipelines.usecases.spec import available, load_usecase

DAGS_DIR = REPO_ROOT / "dags"
USECASES_DIR = REPO_ROOT / "usecases"
DAG_FILES = sorted(p for p in DAGS_DIR.glob("*.py") if not p.name.startswith("_"))
HEAVY = ["great_expectations", "feast", "torch", "xgboost", "bentoml", "alibi_detect", "onnxruntime",
         "pandas", "dbt", "sklearn", "duckdb", "pyarrow"]  # fmt: skip


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS_DIR))


def test_dag_files_exist():
    assert DAG_FILES, f"no DAG files in {DAGS_DIR}"


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}


@pytest.mark.parametrize("name", available(USECASES_DIR))
def test_every_use_case_has_its_five_dags_built_from_its_spec(dagbag, name):
    from pipelines.usecases.scaffold import DAG_KINDS

    spec = load_usecase(USECASES_DIR, name)
    for kind in DAG_KINDS:
        dag = dagbag.dags[spec.dag_id(kind)]
        assert name in dag.tags and dag.owner == spec.owner
        # the Airflow UI shows the spec the DAG was built from
        assert "## Use-case spec" in dag.doc_md and spec.as_yaml() in dag.doc_md
    training = dagbag.dags[spec.dag_id("training")]
    assert training.timetable.timetable.summary == spec.training.schedule
    assert dagbag.dags[spec.dag_id("monitoring")].timetable.summary == spec.monitoring.schedule
    assert dagbag.dags[spec.dag_id("ingest")].max_active_runs == spec.ingest.max_active_runs


def test_a_release_that_needs_approval_waits_on_an_approver_before_it_takes_traffic(dagbag):
    """The flights' spec requires four eyes: the deploy DAG's release waits on the approval step."""
    from pipelines.orchestration.approval import CandidateApproval

    spec = load_usecase(USECASES_DIR, "flight_delay")
    assert spec.deploy.approval == "required"
    deploy = dagbag.dags[spec.dag_id("deploy")]
    approve = deploy.get_task("approve")
    assert isinstance(approve, CandidateApproval) and approve.response_timeout == spec.deploy.approval_timeout
    assert "approve" in deploy.get_task("release").upstream_task_ids
    bikes = dagbag.dags[load_usecase(USECASES_DIR, "bike_rentals").dag_id("deploy")]
    assert "approve" not in bikes.task_ids  # its spec does not ask for an approval


@pytest.mark.parametrize("name", available(USECASES_DIR))
def test_a_use_case_with_streams_is_reconciled_on_its_stream_days_asset_watched_on_the_broker(dagbag, name):
    from pipelines.orchestration.stream_days import StreamDaysTrigger

    spec = load_usecase(USECASES_DIR, name)
    dag = dagbag.dags.get(spec.dag_id("reconciliation"))
    if spec.streaming is None:
        assert dag is None, f"{name} has no streams, yet a reconciliation DAG"
        return
    assert dag is not None, f"{name} has streams: add dags/{name}_reconciliation.py (reconciliation_dag({name!r}))"
    [asset] = dag.timetable.asset_condition.objects
    [watcher] = asset.watchers
    assert asset.name == f"{name}_stream_days" and isinstance(watcher.trigger, StreamDaysTrigger)
    assert watcher.trigger.key.endswith(f":{name}:days") and [t.task_id for t in dag.tasks] == ["reconcile"]


def test_every_dag_is_documented_tagged_and_retried_with_a_timeout(dagbag):
    from airflow.providers.standard.operators.hitl import HITLOperator

    for dag_id, dag in dagbag.dags.items():
        assert dag.tags, f"{dag_id} has no tags"
        assert dag.doc_md, f"{dag_id} has no documentation"
        for task in dag.tasks:
            if isinstance(task, HITLOperator):  # a person's answer is not retried; no answer in time rejects
                assert task.retries == 0 and task.response_timeout is not None, f"{dag_id}.{task.task_id}"
                continue
            assert task.retries >= 1, f"{dag_id}.{task.task_id} has no retries"
            assert task.execution_timeout is not None, f"{dag_id}.{task.task_id} has no execution_timeout"


@pytest.mark.parametrize("dag_file", DAG_FILES, ids=lambda p: p.name)
def test_top_level_imports_nothing_heavy(dag_file):
    probe = (
        "import runpy, sys, json; runpy.run_path(sys.argv[1]); "
        f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    )
    completed = subprocess.run([sys.executable, "-c", probe, str(dag_file)], capture_output=True, text=True,
                               check=True, cwd=REPO_ROOT)  # fmt: skip
    loaded = json.loads(completed.stdout.strip().splitlines()[-1])
    assert loaded == [], f"{dag_file.name} imports {loaded} at its top level; move them into the tasks"


@pytest.mark.parametrize("name", available(USECASES_DIR))
def test_batch_scoring_runs_each_evening_and_when_a_release_makes_a_new_champion(dagbag, name):
    spec = load_usecase(USECASES_DIR, name)
    batch = dagbag.dags[spec.dag_id("batch_scoring")]
    assert batch.timetable.timetable.summary == "0 18 * * *" and [t.task_id for t in batch.tasks] == ["score"]
    condition = batch.timetable.asset_condition
    assets = getattr(condition, "objects", [condition])
    assert [a.name for a in assets] == [f"{name}_champion"]
    release = dagbag.dags[spec.dag_id("deploy")].get_task("release")
    assert [o.name for o in release.outlets] == [f"{name}_champion"]
