"""Deployment of the flight-delay model: Bento build → release, on every model event.

Runs when the training DAG moves an alias (the `flight_delay_model` asset), or by hand with
`{"version": n}`. A first champion goes live at once. A challenger is smoke-tested in shadow
(scored on real flights, never returned), then walked through the canary steps
(PLATFORM_CANARY_STEPS, each watched for PLATFORM_CANARY_OBSERVE_SECONDS): its live error rate,
scoring latency and prediction distribution are compared with the champion's from the
prediction log. A breach puts all traffic back on the champion and fails the run with the
reasons; passing every step promotes it. Every move is in the audit ledger.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import dag, task
from airflow.sdk.exceptions import AirflowSkipException

from pipelines.orchestration.airflow_adapter import MODEL, fail_fast_on_bad_data

DEFAULT_ARGS = {
    "owner": "ml-platform",
    # A breach, a failed smoke test or bad configuration fails at once (fail_fast_on_bad_data); a
    # retry after anything else starts the release over from the champion-only plan.
    "retries": 1,
    "retry_delay": pendulum.duration(minutes=1),
    "execution_timeout": pendulum.duration(hours=12),
}


@dag(
    dag_id="flight_delay_deploy",
    schedule=[MODEL],
    start_date=pendulum.datetime(2013, 1, 1, tz="America/New_York"),
    catchup=False,
    max_active_runs=1,  # one release at a time
    default_args=DEFAULT_ARGS,
    params={"version": None, "alias": "challenger"},
    tags=["flight_delay", "deploy", "canary"],
    doc_md=__doc__,
)
def flight_delay_deploy():
    @task
    @fail_fast_on_bad_data
    def target(params=None, triggering_asset_events=None) -> list:
        from pipelines.orchestration import deploy

        events = [dict(e.extra or {}) for batch in (triggering_asset_events or {}).values() for e in batch]
        chosen = deploy.release_target(params, events)
        if chosen is None:
            raise AirflowSkipException("no version moved: the training run registered nothing that passed the gate")
        return list(chosen)

    @task
    @fail_fast_on_bad_data
    def build_bento() -> str:
        from pipelines.orchestration import deploy
        from pipelines.settings import get_settings

        return deploy.build_bento(get_settings())

    @task
    @fail_fast_on_bad_data
    def release(chosen: list, bento: str) -> dict:
        from pipelines.orchestration import deploy
        from pipelines.settings import get_settings

        print(f"Releasing flight_delay v{chosen[1]} ({chosen[0]}) with Bento {bento}")
        return deploy.release(get_settings(), chosen[0], chosen[1])

    release(target(), build_bento())


flight_delay_deploy()
