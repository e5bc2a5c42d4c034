"""Daily drift and performance monitoring of the flight-delay champion; asks for a retrain when the
evidence persists.

For the day before the run (or the `day` parameter): the champion's live answers for that day's
flights, from the prediction log, against the reference sample registered with the model →
alibi-detect in the drift virtualenv (KS per feature with Bonferroni correction, chi-squared for
carrier and origin, MMD on a bounded sample, drift of the predictions) → performance on the
landed arrivals → the retraining policy (effect sizes beyond the drift that is normal between
days of the reference period, weighted by the model's reliance on each feature; log loss and
calibration from the labels; consecutive days, cooldown, one request in flight) → an HTML report.
A retrain emits the `flight_delay_retrain` asset with the reason and the window's last day; the
training DAG is scheduled on it, and its candidate goes through the gate and the canary.
"""

from __future__ import annotations

import os
from pathlib import Path

import pendulum
from airflow.sdk import dag, task
from airflow.sdk.exceptions import AirflowSkipException
from airflow.timetables.trigger import CronTriggerTimetable

from pipelines.orchestration.airflow_adapter import RETRAIN, fail_fast_on_bad_data

REPO = Path(__file__).resolve().parents[1]
# alibi-detect needs numpy < 2: it has its own virtualenv (make setup builds it).
DRIFT_PYTHON = os.environ.get("PLATFORM_DRIFT_PYTHON", str(REPO / ".venv-drift" / "bin" / "python"))
DEFAULT_ARGS = {
    "owner": "ml-platform",
    "retries": 1,
    "retry_delay": pendulum.duration(minutes=2),
    "execution_timeout": pendulum.duration(hours=1),
}


@dag(
    dag_id="flight_delay_monitoring",
    schedule=CronTriggerTimetable("0 7 * * *", timezone="America/New_York", run_immediately=False),
    catchup=False,  # and no start_date: unpausing waits for the next scheduled time, never runs a missed one
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    params={"day": None},
    tags=["flight_delay", "monitoring", "drift"],
    doc_md=__doc__,
)
def flight_delay_monitoring():
    @task
    @fail_fast_on_bad_data
    def window(params=None, logical_date=None) -> str:
        import datetime as dt

        from pipelines.orchestration import monitoring
        from pipelines.settings import get_settings

        if params and params.get("day"):
            day = dt.date.fromisoformat(str(params["day"]))
        else:
            day = pendulum.instance(logical_date).in_timezone("America/New_York").date() - dt.timedelta(days=1)
        return monitoring.prepare_window(get_settings(), day)

    @task.external_python(python=DRIFT_PYTHON, expect_airflow=False)
    def detect(folder: str, repo: str) -> str:
        import sys

        sys.path.insert(0, repo)
        from pipelines.monitoring.detect import main

        main([f"{folder}/reference.parquet", f"{folder}/current.parquet", f"{folder}/config.json",
              f"{folder}/drift.json"])  # fmt: skip
        return folder

    @task
    @fail_fast_on_bad_data
    def assess(folder: str) -> dict:
        import datetime as dt

        from pipelines.orchestration import monitoring
        from pipelines.settings import get_settings

        outcome = monitoring.assess_and_decide(get_settings(), folder, dt.date.fromisoformat(Path(folder).name))
        print(monitoring.render(outcome))
        return outcome["decision"]

    @task(outlets=[RETRAIN])
    def request_retrain(decision: dict, outlet_events=None) -> dict:
        if not decision["retrain"]:
            raise AirflowSkipException(decision["reason"])
        # The training DAG ends its window on window_end (pipelines.orchestration.training.window_end).
        outlet_events[RETRAIN].extra = {"window_end": decision["window_end"], "reason": decision["reason"]}
        return decision

    request_retrain(assess(detect(window(), str(REPO))))


flight_delay_monitoring()
