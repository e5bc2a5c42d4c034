"""Bike rentals: the ingest DAG, built from usecases/bike_rentals/usecase.yaml (docs in the Airflow UI)."""

from pipelines.orchestration.dag_builders import ingest_dag

dag = ingest_dag("bike_rentals")
