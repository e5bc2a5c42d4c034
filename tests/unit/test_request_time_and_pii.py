import hashlib

import pandas as pd
import pytest

from pipelines.features.pii import hash_pii
from pipelines.features.request_time import prediction_time, time_features


def test_time_features_from_the_local_clock():
    departures = pd.Series(pd.to_datetime(["2013-01-05 17:45", "2013-07-01 06:00"]))
    features = time_features(departures, "dep")
    assert list(features.columns) == ["dep_hour", "dep_weekday", "dep_month"]
    assert features["dep_hour"].tolist() == [17.75, 6.0]
    assert features["dep_weekday"].tolist() == [5, 0]  # Saturday, Monday
    assert features["dep_month"].tolist() == [1, 7]


def test_time_features_refuse_an_instant_with_a_time_zone():
    with pytest.raises(ValueError, match="local wall-clock"):
        time_features(pd.Series(pd.to_datetime(["2013-01-05 17:45"]).tz_localize("UTC")), "dep")


def test_prediction_time_is_local_midnight_of_the_operations_day_in_utc():
    from zoneinfo import ZoneInfo

    days = pd.Series(pd.to_datetime(["2013-01-05", "2013-07-01"]))
    assert prediction_time(days, ZoneInfo("America/New_York")).dt.hour.tolist() == [5, 4]  # EST, EDT
    assert prediction_time(days, ZoneInfo("Asia/Dubai")).dt.strftime("%d %H").tolist() == ["04 20", "30 20"]


def test_pii_hash_is_salted_sha256():
    assert hash_pii("N14228", "s") == hashlib.sha256(b"s|N14228").hexdigest()
    assert hash_pii("N14228", "s") != hash_pii("N14228", "t")
    assert hash_pii(None, "s") is None
