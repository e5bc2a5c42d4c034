"""Flight delay: the monitoring DAG, built from usecases/flight_delay/usecase.yaml (docs in the Airflow UI)."""

from pipelines.orchestration.dag_builders import monitoring_dag

dag = monitoring_dag("flight_delay")
