"""Which Airflow processes import the stages' libraries before forking tasks (pipelines/orchestration/preload.py)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from pipelines.orchestration.preload import forks_tasks


@pytest.mark.parametrize(("argv", "executor", "forks"), [
    (["airflow", "scheduler"], "LocalExecutor", True),
    (["airflow", "scheduler", "--num-runs", "1"], "airflow.executors.local_executor.LocalExecutor", True),
    (["airflow", "scheduler"], "CeleryExecutor", False),  # its tasks run on the Celery workers
    (["airflow", "celery", "worker", "--concurrency", "1"], "CeleryExecutor", True),
    (["airflow", "api-server"], "LocalExecutor", False),
    (["airflow", "dag-processor"], "LocalExecutor", False),
    (["airflow", "dags", "test", "flight_delay_ingest"], "LocalExecutor", False),
    (["airflow", "celery", "flower"], "CeleryExecutor", False),
])  # fmt: skip
def test_only_the_processes_that_fork_tasks_preload(argv, executor, forks):
    assert forks_tasks(argv, executor) is forks


def test_preload_imports_the_task_modules_once_and_can_be_turned_off():
    code = (
        "import sys; from pipelines.orchestration.preload import preload, TASK_MODULES\n"
        "env = {'AIRFLOW__CORE__EXECUTOR': 'LocalExecutor'}\n"
        "assert preload(['airflow', 'api-server'], env) == [] and 'feast' not in sys.modules\n"
        "assert preload(['airflow', 'scheduler'], {**env, 'PLATFORM_PRELOAD_TASK_MODULES': '0'}) == []\n"
        "assert 'great_expectations' not in sys.modules\n"
        "assert preload(['airflow', 'scheduler'], env) == list(TASK_MODULES)\n"
        "assert all(m in sys.modules for m in TASK_MODULES)\n"
        "assert preload(['airflow', 'scheduler'], env) == []  # already there: nothing said twice\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stderr.count("preloaded") == 1


def test_a_library_missing_from_the_image_does_not_stop_airflow_starting():
    code = (
        "import pipelines.orchestration.preload as p\n"
        "p.TASK_MODULES = ('json', 'no_such_stage_library')\n"
        "assert p.preload(['airflow', 'celery', 'worker'], {}) == ['json']\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "not installed: no_such_stage_library" in done.stderr
