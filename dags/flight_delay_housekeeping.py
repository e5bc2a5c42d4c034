"""Flight delay: the housekeeping (retention) DAG, built from usecases/flight_delay/usecase.yaml
(docs in the Airflow UI)."""

from pipelines.orchestration.dag_builders import housekeeping_dag

dag = housekeeping_dag("flight_delay")
