"""Bike rentals: the batch scoring DAG, built from usecases/bike_rentals/usecase.yaml
(docs in the Airflow UI)."""

from pipelines.orchestration.dag_builders import batch_scoring_dag

dag = batch_scoring_dag("bike_rentals")
