"""Orchestration: the stage functions the DAGs call, and the Airflow environment of the platform."""
