import hashlib

import pandas as pd
import pytest

from pipelines.features.pii import hash_pii
from pipelines.features.request_time import prediction_time, time_features
from pipelines.usecases.prediction import Prediction


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
    start = Prediction(lead_time="start_of_day")
    assert prediction_time(start, days, None, ZoneInfo("America/New_York")).dt.hour.tolist() == [5, 4]  # EST, EDT
    dubai = prediction_time(start, days, None, ZoneInfo("Asia/Dubai"))
    assert dubai.dt.strftime("%d %H").tolist() == ["04 20", "30 20"]


def test_prediction_time_with_a_lead_time_is_that_long_before_the_local_request_time():
    from zoneinfo import ZoneInfo

    tz = ZoneInfo("America/New_York")
    lead = Prediction(lead_time="PT2H")
    local = pd.Series(pd.to_datetime(["2013-01-05 17:45", "2013-07-01 06:10", "2013-11-03 01:30", "2013-03-10 02:30"]))
    days = local.dt.normalize()
    got = prediction_time(lead, days, local, tz).dt.strftime("%Y-%m-%d %H:%M").tolist()
    # 17:45 EST = 22:45 UTC; 06:10 EDT = 10:10 UTC; the repeated 01:30 reads as EDT (05:30 UTC); the skipped
    # 02:30 as 03:00 EDT (07:00 UTC); each minus two hours.
    assert got == ["2013-01-05 20:45", "2013-07-01 08:10", "2013-11-03 03:30", "2013-03-10 05:00"]
    # A departure before 02:00 is predicted the evening before its operations day starts.
    before_its_day = prediction_time(lead, days, local, tz) < prediction_time(Prediction(), days, local, tz)
    assert before_its_day.tolist() == [False, False, True, False]


@pytest.mark.parametrize("bad", ["PT0S", "-PT1H", "P8D", "at noon"])
def test_a_lead_time_that_is_not_a_positive_duration_of_at_most_a_week_is_refused(bad):
    with pytest.raises(ValueError, match="lead_time"):
        Prediction(lead_time=bad)


def test_pii_hash_is_salted_sha256():
    assert hash_pii("N14228", "s") == hashlib.sha256(b"s|N14228").hexdigest()
    assert hash_pii("N14228", "s") != hash_pii("N14228", "t")
    assert hash_pii(None, "s") is None
