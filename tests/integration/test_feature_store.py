"""Feast over the marts: point-in-time-correct training sets (checked against plain pandas),
and the online store holding the latest values after materialization."""

import datetime as dt
import shutil

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines.features.pii import hash_pii
from pipelines.features.request_time import prediction_time
from pipelines.features.store import (
    apply_definitions,
    build_training_set,
    feature_store,
    training_entities,
)
from pipelines.security.secrets import pii_salt
from pipelines.training.dataset import feature_columns
from tests.conftest import FLIGHT_DELAY, make_settings

VIEWS = {
    # view: (join key, ttl, features)
    "carrier_delay_rates": ("carrier", pd.Timedelta(days=2),
                            ["carrier_flights_7d", "carrier_late_rate_7d", "carrier_late_rate_28d"]),
    "route_delay_rates": ("route", pd.Timedelta(days=2), ["route_late_rate_7d", "route_distance_miles"]),
    "plane_features": ("tailnum_hash", pd.Timedelta(days=3650), ["plane_age_years", "plane_seats"]),
    "origin_weather": ("origin", pd.Timedelta(hours=3), ["temperature_f", "visibility_mi", "wind_gust_mph"]),
}  # fmt: skip


@pytest.fixture(scope="module")
def training(built):
    known_at = built.end + dt.timedelta(days=2)
    entities = training_entities(built.settings, FLIGHT_DELAY, built.days[1], built.days[-1], known_at)
    return entities, build_training_set(built.settings, FLIGHT_DELAY, entities)


def _reference(built, view: str, entities: pd.DataFrame) -> pd.DataFrame:
    """Latest feature row at or before each event time, within the ttl: merge_asof in pandas."""
    key, ttl, features = VIEWS[view]
    rows = pq.read_table(built.settings.feature_export_dir / f"{view}.parquet").to_pandas()
    rows = rows.sort_values("feature_timestamp")
    rows["feature_timestamp"] = pd.to_datetime(rows["feature_timestamp"], utc=True)
    left = entities.sort_values("event_timestamp")[["flight_id", key, "event_timestamp"]]
    merged = pd.merge_asof(left, rows[[key, "feature_timestamp", *features]], left_on="event_timestamp",
                           right_on="feature_timestamp", by=key, direction="backward", tolerance=ttl)  # fmt: skip
    return merged.set_index("flight_id")


@pytest.mark.parametrize("view", sorted(VIEWS))
def test_training_set_equals_a_point_in_time_join_in_pandas(built, training, view):
    entities, frame = training
    _, _, features = VIEWS[view]
    expected = _reference(built, view, entities)
    got = frame.set_index("flight_id")
    assert len(got) == len(entities)
    assert (expected["feature_timestamp"].dropna() <= expected.loc[
        expected["feature_timestamp"].notna(), "event_timestamp"]).all()  # fmt: skip
    for feature in features:
        pd.testing.assert_series_equal(
            got[feature].astype("float64").sort_index(),
            expected[feature].astype("float64").sort_index(),
            check_names=False,
        )


def test_labels_unknown_at_training_time_are_left_out(built):
    cutoff = dt.datetime.combine(built.days[1], dt.time(12), dt.UTC)
    entities = training_entities(built.settings, FLIGHT_DELAY, built.days[0], built.days[-1], cutoff)
    assert len(entities) > 0
    assert (pd.to_datetime(entities.label_available_at, utc=True) <= cutoff).all()


def test_request_time_features_are_part_of_the_training_set(training):
    entities, frame = training
    local = pd.to_datetime(frame["scheduled_departure_local"])
    assert set(FLIGHT_DELAY.features.request_features) <= set(frame.columns)
    assert (frame["dep_hour"] == local.dt.hour + local.dt.minute / 60).all()


def test_a_future_feature_row_never_reaches_an_earlier_event(built, training):
    """Plant a carrier snapshot one second after a flight's prediction time with an impossible value."""
    entities, _ = training
    target = entities.iloc[len(entities) // 2]
    path = built.settings.feature_export_dir / "carrier_delay_rates.parquet"
    original = pq.read_table(path)
    planted = original.slice(0, 1).to_pandas()
    planted["carrier"] = target.carrier
    planted["feature_timestamp"] = pd.Timestamp(target.event_timestamp) + pd.Timedelta(seconds=1)
    planted["carrier_late_rate_7d"] = 0.987654
    pq.write_table(pa.concat_tables([original, pa.Table.from_pandas(planted, schema=original.schema,
                                                                     preserve_index=False)]), path)  # fmt: skip
    try:
        flight = entities[entities.flight_id == target.flight_id]
        frame = build_training_set(built.settings, FLIGHT_DELAY, flight)
        assert frame.loc[0, "carrier_late_rate_7d"] != 0.987654
        # positive control: the same flight predicted two seconds later sees the planted row
        later = flight.assign(event_timestamp=flight.event_timestamp + pd.Timedelta(seconds=2))
        assert build_training_set(built.settings, FLIGHT_DELAY, later).loc[0, "carrier_late_rate_7d"] == 0.987654
    finally:
        pq.write_table(original, path)


def test_every_flight_of_a_day_is_predicted_at_the_start_of_its_operations_day(training):
    entities, _ = training
    local = entities.event_timestamp.dt.tz_convert(FLIGHT_DELAY.tz)
    assert (local.dt.hour == 0).all() and (local.dt.minute == 0).all()
    assert (local.dt.date == entities.scheduled_departure_local.dt.date).all()


def test_serving_reads_for_the_next_day_exactly_what_training_joins_for_it(built):
    """After the ingest of day D-1 (the online store materialized to its end), a request for a flight
    of day D gets the stored features that the point-in-time join gives that flight in training."""
    from serving.model import OnlineFeatures
    from serving.replay import day_requests
    from serving.schema import item_model

    day = built.days[-1] + dt.timedelta(days=1)  # not ingested: served from what D-1 left
    flights = [item_model(FLIGHT_DELAY)(**r) for r in day_requests(built.settings, FLIGHT_DELAY, day)]
    salt = pii_salt(built.settings)
    features = [
        f for f in feature_columns(built.settings, FLIGHT_DELAY) if f not in FLIGHT_DELAY.features.request_features
    ]
    items = [f.model_dump() for f in flights]
    online = pd.DataFrame(OnlineFeatures(built.settings, FLIGHT_DELAY, salt).matrix(items, features), columns=features)
    entities = pd.DataFrame(
        {
            "flight_id": [f.flight_id for f in flights],
            "carrier": [f.carrier for f in flights],
            "route": [f"{f.origin}-{f.destination}" for f in flights],
            "tailnum_hash": [hash_pii(f.tailnum, salt) if f.tailnum else "" for f in flights],
            "origin": [f.origin for f in flights],
            "scheduled_departure_local": pd.to_datetime([f.scheduled_departure for f in flights]),
        }
    )
    days = pd.Series([day] * len(flights))
    entities.insert(5, "event_timestamp", prediction_time(FLIGHT_DELAY.prediction, days, None, FLIGHT_DELAY.tz))
    offline = build_training_set(built.settings, FLIGHT_DELAY, entities).set_index("flight_id").loc[entities.flight_id]
    assert len(flights) > 500
    weather = ["temperature_f", "humidity_pct", "pressure_mb"]
    assert offline[weather].notna().all().all(), "the weather of D-1's last hour reaches D's flights"
    for feature in features:
        np.testing.assert_allclose(online[feature], offline[feature].astype("float64"), rtol=1e-6, err_msg=feature)


def test_online_store_serves_the_latest_snapshot(built):
    store = feature_store(built.settings)
    rates = pq.read_table(built.settings.feature_export_dir / "carrier_delay_rates.parquet").to_pandas()
    latest = rates.sort_values("feature_timestamp").groupby("carrier").tail(1).set_index("carrier")
    online = (
        store.get_online_features(
            features=["carrier_delay_rates:carrier_flights_7d", "carrier_delay_rates:carrier_late_rate_7d"],
            entity_rows=[{"carrier": c} for c in latest.index],
        )
        .to_df()
        .set_index("carrier")
    )
    assert (online["carrier_flights_7d"] == latest["carrier_flights_7d"]).all()
    assert online["carrier_late_rate_7d"].tolist() == pytest.approx(
        latest["carrier_late_rate_7d"].tolist(), nan_ok=True
    )
    plane = store.get_online_features(
        features=["plane_features:plane_seats"], entity_rows=[{"tailnum_hash": "no-such-plane"}]
    ).to_dict()
    assert plane["plane_seats"] == [None]


def _online_carrier_rates(settings) -> dict:
    rows = (
        feature_store(settings)
        .get_online_features(
            features=["carrier_delay_rates:carrier_flights_7d"],
            entity_rows=[{"carrier": c} for c in ("AA", "B6", "UA")],
        )
        .to_dict()
    )
    return dict(zip(rows["carrier"], rows["carrier_flights_7d"], strict=True))


def test_applying_in_a_copied_data_root_leaves_both_online_stores_intact(built, tmp_path):
    """Feast records the absolute path of each SQLite online table; an apply in a copy of a data root (a
    restore, a moved platform) once dropped the original's tables and left the copy's unrecorded."""
    before = _online_carrier_rates(built.settings)
    assert all(v is not None and v > 0 for v in before.values()), before
    copy = make_settings(tmp_path / "var")
    shutil.copytree(built.settings.data_root, copy.data_root)
    apply_definitions(copy)
    apply_definitions(copy)  # a second apply finds everything recorded where it is
    assert _online_carrier_rates(copy) == before
    assert _online_carrier_rates(built.settings) == before
    recorded = {o.path for o in feature_store(copy).registry.get_infra("platform").infra_objects}
    assert recorded == {str(copy.feast_dir / "online_store.db")}
