"""Flight delay: the training DAG, built from usecases/flight_delay/usecase.yaml (docs in the Airflow UI)."""

from pipelines.orchestration.dag_builders import training_dag

dag = training_dag("flight_delay")
