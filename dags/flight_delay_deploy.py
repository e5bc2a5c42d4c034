"""Flight delay: the deploy DAG, built from usecases/flight_delay/usecase.yaml (docs in the Airflow UI)."""

from pipelines.orchestration.dag_builders import deploy_dag

dag = deploy_dag("flight_delay")
