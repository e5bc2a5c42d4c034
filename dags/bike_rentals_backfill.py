"""Bike rentals: the backfill DAG, built from usecases/bike_rentals/usecase.yaml (docs in the Airflow UI)."""

from pipelines.orchestration.dag_builders import backfill_dag

dag = backfill_dag("bike_rentals")
