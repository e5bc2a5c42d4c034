"""When a row is predicted, and the request-time features: computed from what a prediction request
carries, by these functions in training (the point-in-time join) and in serving.

Prediction time. The ingest DAG makes a day's data available once the day is over: while day D is
served, the online store holds what was known at D 00:00 in the use case's time zone (for flights:
the carrier and route rates of flights landed before D, the weather observed up to the end of D-1).
Training therefore joins each row's stored features as of the start of its operations day, exactly
what serving reads for it; joining them as of the row's own time would train on data that serving
never has.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd


def prediction_time(days: pd.Series, tz: dt.tzinfo) -> pd.Series:
    """The instant a row is predicted: the start (00:00 local, in `tz`) of its operations day, in UTC."""
    return pd.to_datetime(days).dt.tz_localize(tz).dt.tz_convert("UTC")


def time_features(local: pd.Series, prefix: str) -> pd.DataFrame:
    """Hour of day (fractional), weekday (0 = Monday) and month of a local wall-clock time, named
    <prefix>_hour, <prefix>_weekday, <prefix>_month (the spec's features.request_time)."""
    clock = pd.to_datetime(local)
    if clock.dt.tz is not None:
        raise ValueError(f"{local.name or 'the request time'} must be a local wall-clock time without a time zone")
    return pd.DataFrame(
        {
            f"{prefix}_hour": clock.dt.hour + clock.dt.minute / 60.0,
            f"{prefix}_weekday": clock.dt.weekday.astype("int64"),
            f"{prefix}_month": clock.dt.month.astype("int64"),
        },
        index=local.index,
    )
