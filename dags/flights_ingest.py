"""Daily ingest of the flight-delay use case.

land → validate (Great Expectations) → transform (warehouse load + dbt build) →
materialize (Feast), for the local New York operations day of each data interval.
A failed validation stops the run: nothing is loaded, built or materialized.

Each run processes the day named by its logical date: scheduled and backfill runs (whose
data interval starts then) and a manual run for a chosen date alike.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import dag, task
from airflow.timetables.interval import CronDataIntervalTimetable

from pipelines.orchestration import ingest
from pipelines.orchestration.airflow_adapter import FEATURES, fail_fast_on_bad_data

DEFAULT_ARGS = {
    "owner": "data-platform",
    "retries": 2,
    "retry_delay": pendulum.duration(seconds=30),
    "execution_timeout": pendulum.duration(minutes=20),
}


@dag(
    dag_id="flights_ingest",
    # One run per local day, after it ends, covering [midnight, next midnight) New York time.
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="America/New_York"),
    start_date=pendulum.datetime(2013, 1, 1, tz="America/New_York"),
    end_date=pendulum.datetime(2013, 12, 31, tz="America/New_York"),
    catchup=False,
    max_active_runs=2,
    default_args=DEFAULT_ARGS,
    tags=["flight_delay", "ingest", "features"],
    doc_md=__doc__,
)
def flights_ingest():
    @task
    @fail_fast_on_bad_data
    def land(logical_date=None) -> dict:
        return ingest.land(ingest.logical_day(logical_date))

    @task
    @fail_fast_on_bad_data
    def validate(landed: dict, logical_date=None) -> dict:
        return ingest.validate(ingest.logical_day(logical_date))

    # Trailing delay rates need the previous days in the warehouse: one day at a time, in order.
    @task(pool="warehouse", depends_on_past=True)
    @fail_fast_on_bad_data
    def transform(validated: dict, logical_date=None) -> dict:
        return ingest.transform(ingest.logical_day(logical_date))

    @task(pool="feature_store", depends_on_past=True, outlets=[FEATURES])
    def materialize(transformed: dict, logical_date=None, outlet_events=None) -> dict:
        day = ingest.logical_day(logical_date)
        outlet_events[FEATURES].extra = {"day": day.isoformat()}  # the training DAG's window ends here
        return ingest.materialize(day)

    materialize(transform(validate(land())))


flights_ingest()
