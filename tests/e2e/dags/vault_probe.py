"""A probe DAG for the secrets tests: reads a connection and variables that exist only in Vault
and prints them, so the test can see that Airflow resolved them and masked them in the log.
Triggered with conf {"fail": true} it fails instead (the incident test); with {"fail": true, "rollback": true}
it first opens the incident a rolled-back release opens for its run, as the deploy DAG's release task does."""

from __future__ import annotations

import pendulum
from airflow.sdk import dag, task


@dag(schedule=None, start_date=pendulum.datetime(2013, 1, 1, tz="UTC"), catchup=False, tags=["test"])
def vault_probe():
    @task(retries=0)
    def print_secrets(dag_run=None) -> None:
        from airflow.sdk import Connection, Variable

        conf = dag_run.conf or {}
        if conf.get("rollback"):
            from pipelines.alerting.incidents import platform_event
            from pipelines.settings import get_settings

            platform_event(get_settings(), "CanaryRolledBack", "rollback:probe/v1", "platform", "probe v1 rolled back",
                           dag_run=f"{dag_run.dag_id}/{dag_run.run_id}")  # fmt: skip
        if conf.get("fail"):
            raise RuntimeError("asked to fail (conf fail=true)")
        conn = Connection.get("probe_db")
        print(f"probe host={conn.host} login={conn.login} password={conn.password}")
        print(f"probe token={Variable.get('probe_api_token')}")
        print(f"probe salt={Variable.get('pii_salt')}")

    print_secrets()


vault_probe()
