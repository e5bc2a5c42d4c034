"""Flight delay: the batch scoring DAG, built from usecases/flight_delay/usecase.yaml
(docs in the Airflow UI)."""

from pipelines.orchestration.dag_builders import batch_scoring_dag

dag = batch_scoring_dag("flight_delay")
