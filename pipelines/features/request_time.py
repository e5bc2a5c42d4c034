"""When a flight is predicted, and the request-time features: computed from what a prediction
request carries, by these functions in training (the point-in-time join) and in serving.

Prediction time. The ingest DAG makes a day's data available once the day is over: while day D is
served, the online store holds what was known at D 00:00 (the carrier and route rates of flights
landed before D, the weather observed up to the end of D-1). Training therefore joins each flight's
stored features as of the start of its operations day, exactly what serving reads for it; joining
them as of the scheduled departure would train on weather that serving never has.
"""

from __future__ import annotations

import pandas as pd

from pipelines.settings import OPERATIONS_TZ

REQUEST_FEATURES = ("dep_hour", "dep_weekday", "dep_month")


def prediction_time(flight_date: pd.Series) -> pd.Series:
    """The instant a flight is predicted: the start (00:00 local) of its operations day, in UTC."""
    days = pd.to_datetime(flight_date)
    return days.dt.tz_localize(OPERATIONS_TZ).dt.tz_convert("UTC")


def schedule_features(scheduled_departure_local: pd.Series) -> pd.DataFrame:
    """Hour of day (fractional), weekday (0 = Monday) and month of the local scheduled departure."""
    local = pd.to_datetime(scheduled_departure_local)
    if local.dt.tz is not None:
        raise ValueError("scheduled_departure_local must be a local wall-clock time without a time zone")
    return pd.DataFrame(
        {
            "dep_hour": local.dt.hour + local.dt.minute / 60.0,
            "dep_weekday": local.dt.weekday.astype("int64"),
            "dep_month": local.dt.month.astype("int64"),
        },
        index=scheduled_departure_local.index,
    )
