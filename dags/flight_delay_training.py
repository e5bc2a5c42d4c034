"""Training of the flight-delay model: dataset → XGBoost and MLP candidates → gate → registry.

Runs when new features land (the ingest DAG's asset), when drift monitoring asks for a
retrain, and weekly otherwise. The window ends at the day the triggering event names (or the
run's `last_day` parameter, or the newest landed day): fitted on the earliest days,
early-stopped on the next, judged with the champion on the latest (PLATFORM_TRAIN_DAYS,
_VALIDATION_DAYS, _HOLDOUT_DAYS). Every candidate is registered, signed and encrypted; only one
that passes the gate moves an alias (champion if there is none, else challenger).
"""

from __future__ import annotations

import pendulum
from airflow.sdk import dag, task
from airflow.timetables.assets import AssetOrTimeSchedule
from airflow.timetables.trigger import CronTriggerTimetable

from pipelines.orchestration.airflow_adapter import FEATURES, MODEL, RETRAIN, fail_fast_on_bad_data

DEFAULT_ARGS = {
    "owner": "ml-platform",
    "retries": 1,
    "retry_delay": pendulum.duration(minutes=1),
    "execution_timeout": pendulum.duration(hours=2),
}


@dag(
    dag_id="flight_delay_training",
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable("0 3 * * 1", timezone="America/New_York", run_immediately=False),
        assets=(FEATURES | RETRAIN),
    ),
    catchup=False,  # and no start_date: unpausing waits for the next scheduled time, never runs a missed one
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    params={"last_day": None},
    tags=["flight_delay", "training", "gate", "registry"],
    doc_md=__doc__,
)
def flight_delay_training():
    @task
    @fail_fast_on_bad_data
    def dataset(params=None, triggering_asset_events=None, run_id=None) -> str:
        from pipelines.orchestration import training
        from pipelines.settings import get_settings

        events = [dict(e.extra or {}) for batch in (triggering_asset_events or {}).values() for e in batch]
        settings = get_settings()
        window = training.resolve_window(settings, training.window_end(params, events))
        return training.prepare_dataset(settings, window, run_id)

    @task(pool="gpu")
    @fail_fast_on_bad_data
    def train(folder: str, family: str) -> dict:
        from pipelines.orchestration import training
        from pipelines.settings import get_settings

        return training.train_candidate(get_settings(), folder, family)

    @task(outlets=[MODEL])
    @fail_fast_on_bad_data
    def gate_and_register(folder: str, candidates: list, outlet_events=None) -> dict:
        from pipelines.orchestration import training
        from pipelines.settings import get_settings

        outcome = training.gate_and_register(get_settings(), folder, [c["family"] for c in candidates])
        print(training.render(outcome))
        # The deploy DAG reads which version moved: {"champion": n} or {"challenger": n}, or neither.
        outlet_events[MODEL].extra = {k: outcome[k] for k in ("model", "champion", "challenger") if k in outcome}
        return outcome

    folder = dataset()
    candidates = train.partial(folder=folder).expand(family=["xgboost", "mlp"])
    gate_and_register(folder, candidates)


flight_delay_training()
