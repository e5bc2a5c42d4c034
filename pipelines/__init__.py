"""The platform library: every stage callable from Python, tests and the Airflow DAGs."""
