"""Flight delay: the backfill DAG, built from usecases/flight_delay/usecase.yaml (docs in the Airflow UI)."""

from pipelines.orchestration.dag_builders import backfill_dag

dag = backfill_dag("flight_delay")
