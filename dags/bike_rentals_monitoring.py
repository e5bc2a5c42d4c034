"""Bike rentals: the monitoring DAG, built from usecases/bike_rentals/usecase.yaml (docs in the Airflow UI)."""

from pipelines.orchestration.dag_builders import monitoring_dag

dag = monitoring_dag("bike_rentals")
