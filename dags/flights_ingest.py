"""Daily ingest of the flight-delay use case.

land → validate (Great Expectations) → transform (warehouse load + dbt build) →
materialize (Feast), for the local New York operations day of each data interval.
A failed validation stops the run: nothing is loaded, built or materialized.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Asset, dag, task
from airflow.timetables.interval import CronDataIntervalTimetable

from pipelines.orchestration import ingest

FEATURES = Asset("flight_delay_features", uri="feast://flight_delay/flight_delay_v1")

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
    def land(data_interval_start=None) -> dict:
        return ingest.land(ingest.logical_day(data_interval_start))

    @task
    def validate(landed: dict, data_interval_start=None) -> dict:
        return ingest.validate(ingest.logical_day(data_interval_start))

    # Trailing delay rates need the previous days in the warehouse: one day at a time, in order.
    @task(pool="warehouse", depends_on_past=True)
    def transform(validated: dict, data_interval_start=None) -> dict:
        return ingest.transform(ingest.logical_day(data_interval_start))

    @task(pool="feature_store", depends_on_past=True, outlets=[FEATURES])
    def materialize(transformed: dict, data_interval_start=None) -> dict:
        return ingest.materialize(ingest.logical_day(data_interval_start))

    materialize(transform(validate(land())))


flights_ingest()
