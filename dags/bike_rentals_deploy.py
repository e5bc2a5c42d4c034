"""Bike rentals: the deploy DAG, built from usecases/bike_rentals/usecase.yaml (docs in the Airflow UI)."""

from pipelines.orchestration.dag_builders import deploy_dag

dag = deploy_dag("bike_rentals")
