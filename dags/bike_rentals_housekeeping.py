"""Bike rentals: the housekeeping (retention) DAG, built from usecases/bike_rentals/usecase.yaml
(docs in the Airflow UI)."""

from pipelines.orchestration.dag_builders import housekeeping_dag

dag = housekeeping_dag("bike_rentals")
