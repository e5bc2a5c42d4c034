"""Imported by every Airflow process at start-up (the plugins folder is on Airflow's path): the processes that
fork tasks (the scheduler under LocalExecutor, a Celery worker) import the stages' heavy libraries once, so
that no task pays for them (pipelines/orchestration/preload.py)."""

from pipelines.orchestration.preload import preload

preload()
