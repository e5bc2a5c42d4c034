"""Bike rentals: the training DAG, built from usecases/bike_rentals/usecase.yaml (docs in the Airflow UI)."""

from pipelines.orchestration.dag_builders import training_dag

dag = training_dag("bike_rentals")
