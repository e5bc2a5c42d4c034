"""Heavy imports paid once per executor process rather than once per task.

Airflow 3 runs each task in a process forked from the executor's worker (LocalExecutor: worker processes
forked from the scheduler; CeleryExecutor: the Celery pool forked from `airflow celery worker`). A module
the forking process has already imported costs its task nothing, while a fresh import of Feast (with the
torch it brings), Great Expectations and dbt costs every task several seconds (`bench/ingest_cost.py`).
`plugins/airflow_local_settings.py`, which every Airflow process imports at start-up, calls `preload()`;
only the processes that fork tasks import anything. Nothing here reads settings, opens a connection or
starts a thread: a fork inherits modules, never state.

`PLATFORM_PRELOAD_TASK_MODULES=0` turns it off (a scheduler that must start fast, a memory-tight worker).
"""

from __future__ import annotations

import importlib
import os
import sys
import time

# What the ingest tasks import, heaviest first (each stage imports its own again: a no-op once here).
TASK_MODULES = (
    "feast",
    "feast.repo_operations",
    "feast.infra.online_stores.sqlite",
    "great_expectations",
    "great_expectations.checkpoint",
    "dbt.cli.main",
    "dbt.adapters.duckdb",
    "duckdb",
    "pandas",
    "pyarrow.parquet",
    "airflow.sdk.execution_time.task_runner",
    "pipelines.orchestration.dag_builders",
    "pipelines.orchestration.ingest",
    "pipelines.security.audit",
)


_done: list[bool] = []  # whether this process (or the one it was forked from) has preloaded


def forks_tasks(argv: list[str], executor: str) -> bool:
    """Whether this Airflow command is a process that tasks are forked from."""
    command = [a for a in argv[1:] if not a.startswith("-")][:2]
    if command[:1] == ["scheduler"]:
        return executor.endswith("LocalExecutor")
    return command == ["celery", "worker"]


def preload(argv: list[str] | None = None, environ: os._Environ | dict | None = None) -> list[str]:
    """Import TASK_MODULES when this process forks tasks; returns what it imported (nothing elsewhere)."""
    environ = os.environ if environ is None else environ
    argv = sys.argv if argv is None else argv
    if environ.get("PLATFORM_PRELOAD_TASK_MODULES", "1") == "0":
        return []
    if not forks_tasks(argv, environ.get("AIRFLOW__CORE__EXECUTOR", "LocalExecutor")):
        return []
    if _done:  # Airflow loads the plugins folder again, and a fork inherits the parent's modules: do and say it once
        return []
    _done.append(True)
    started = time.monotonic()
    imported, missing = [], []
    for name in TASK_MODULES:
        try:
            importlib.import_module(name)
            imported.append(name)
        except ImportError as exc:  # an image without a stage's library still starts; its tasks import as before
            missing.append(f"{name} ({exc})")
    print(f"platform: preloaded {len(imported)} task modules in {time.monotonic() - started:.1f} s"
          + (f"; not installed: {', '.join(missing)}" if missing else "")
          + " (PLATFORM_PRELOAD_TASK_MODULES=0 turns this off)", file=sys.stderr)  # fmt: skip
    return imported
