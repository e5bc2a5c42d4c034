"""Flight delay: the stream-batch reconciliation DAG, built from usecases/flight_delay/usecase.yaml
(docs in the Airflow UI)."""

from pipelines.orchestration.dag_builders import reconciliation_dag

dag = reconciliation_dag("flight_delay")
