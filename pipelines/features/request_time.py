"""Request-time features: computed from what a prediction request carries, by this one
function in training (after the point-in-time join) and in serving."""

from __future__ import annotations

import pandas as pd

REQUEST_FEATURES = ("dep_hour", "dep_weekday", "dep_month")


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
