"""When a row is predicted, and the request-time features: computed from what a prediction request
carries, by these functions in training (the point-in-time join) and in serving.

Prediction time is the spec's `prediction.lead_time` (pipelines/usecases/prediction.py). At
`start_of_day` a row is predicted with what was known at 00:00 of its operations day in the use
case's time zone: the ingest DAG makes a day's data available once the day is over, so while day D
is served the online store holds what was known at D 00:00. With a lead time the row is predicted
that long before its request time, with what the stream processor had written by then. Training
joins each row's stored features as of that instant, exactly what serving reads for it; joining
them as of the row's own time would train on data that serving never has.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd

from pipelines.usecases.prediction import Prediction


def prediction_time(prediction: Prediction, days: pd.Series, local: pd.Series, tz: dt.tzinfo) -> pd.Series:
    """The instant (UTC) each row is predicted: 00:00 local of its operations day `days`, or the spec's lead
    time before its local request time `local` (a wall clock in `tz`). A wall clock that a DST change
    repeats reads as its first occurrence, one that it skips as the instant after the gap."""
    if prediction.start_of_day:
        return pd.to_datetime(days).dt.tz_localize(tz).dt.tz_convert("UTC")
    clock = pd.to_datetime(local).dt.tz_localize(tz, ambiguous=True, nonexistent="shift_forward")
    return (clock - prediction.lead_time).dt.tz_convert("UTC")


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
