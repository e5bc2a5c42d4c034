"""Flight delay: the ingest DAG, built from usecases/flight_delay/usecase.yaml (docs in the Airflow UI)."""

from pipelines.orchestration.dag_builders import ingest_dag

dag = ingest_dag("flight_delay")
