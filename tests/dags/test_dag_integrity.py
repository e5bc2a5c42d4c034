"""Every DAG file imports cleanly, declares what operators need to see, and keeps its top level
light (its parse time is a benchmark: bench/orchestration.py)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from pipelines.settings import REPO_ROOT

DAGS_DIR = REPO_ROOT / "dags"
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
    assert set(dagbag.dag_ids) >= {"flights_ingest"}


def test_every_dag_is_documented_tagged_and_retried_with_a_timeout(dagbag):
    for dag_id, dag in dagbag.dags.items():
        assert dag.tags, f"{dag_id} has no tags"
        assert dag.doc_md, f"{dag_id} has no documentation"
        for task in dag.tasks:
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
