"""The production configuration on real servers: dbt on PostgreSQL, Feast with a PostgreSQL
offline store and SQL registry and a Redis online store. Same data, same answers as the
embedded defaults."""

from __future__ import annotations

import datetime as dt
import shutil

import duckdb
import pandas as pd
import pytest

from pipelines.features.store import build_training_set, feature_store, materialize, training_entities
from pipelines.features.transform import build_features
from pipelines.ingest.warehouse import load_day, load_reference
from pipelines.security.secrets import LOCAL_POSTGRES, postgres_connection, put_connection
from tests.conftest import FLIGHT_DELAY, fresh_postgres_database, make_settings, require_service

pytestmark = pytest.mark.integration
REDIS_URL = "redis://127.0.0.1:6379/11"  # a database of its own, emptied by this module


def _redis_reachable() -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3).ping())
    except redis.RedisError:
        return False


@pytest.fixture(scope="module")
def postgres_url():
    with fresh_postgres_database("flightops_test") as url:
        yield url


@pytest.fixture(scope="module")
def redis_db():
    require_service(_redis_reachable(), f"Redis is not reachable at {REDIS_URL}")
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    yield REDIS_URL
    client.flushdb()


@pytest.fixture(scope="module")
def production(built, postgres_url, redis_db, tmp_path_factory, openbao):
    conn_id = f"pg_{postgres_url.rsplit('/', 1)[1]}"
    database = postgres_url.rsplit("/", 1)[1]
    put_connection(openbao.root, conn_id, {**LOCAL_POSTGRES, "schema": database})
    settings = make_settings(
        tmp_path_factory.mktemp("production") / "var",
        warehouse_target="postgres",
        postgres_conn_id=conn_id,
        feast_env="production",
        redis_url=redis_db,
    )
    shutil.copytree(built.settings.raw_dir, settings.raw_dir)
    load_reference(settings, FLIGHT_DELAY)
    for day in built.days:
        load_day(settings, FLIGHT_DELAY, day)
    build_features(settings, FLIGHT_DELAY, None)  # one full build; day-by-day equals full is proven on DuckDB
    return settings


def _postgres_mart(settings, name: str) -> pd.DataFrame:
    import sqlalchemy

    engine = sqlalchemy.create_engine(postgres_connection(settings).sqlalchemy_url("psycopg2"))
    with engine.connect() as con:
        frame = pd.read_sql(f"SELECT * FROM marts.{name}", con)
    engine.dispose()
    return frame


def _duckdb_mart(settings, name: str) -> pd.DataFrame:
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        return con.execute(f"SELECT * FROM marts.{name}").df()


def test_dbt_on_postgres_builds_the_same_marts_as_duckdb(built, production):
    pg_flights = _postgres_mart(production, "flights").set_index("flight_id").sort_index()
    dd_flights = _duckdb_mart(built.settings, "flights").set_index("flight_id").sort_index()
    assert list(pg_flights.index) == list(dd_flights.index)
    # The salted hash of personal data is the same in both warehouses (and in Python).
    assert (pg_flights.tailnum_hash.fillna("") == dd_flights.tailnum_hash.fillna("")).all()
    assert (pg_flights.is_late_arrival.astype("boolean") == dd_flights.is_late_arrival.astype("boolean")).all()
    label_pg = pd.to_datetime(pg_flights.label_available_at, utc=True)
    label_dd = pd.to_datetime(dd_flights.label_available_at, utc=True)
    assert ((label_pg == label_dd) | (label_pg.isna() & label_dd.isna())).all()

    keys = ["carrier", "as_of_date"]
    pg_rates = _postgres_mart(production, "carrier_delay_rates")
    dd_rates = _duckdb_mart(built.settings, "carrier_delay_rates")
    pg_rates["as_of_date"] = pd.to_datetime(pg_rates["as_of_date"])
    merged = pg_rates.merge(dd_rates, on=keys, suffixes=("_pg", "_dd"))
    assert len(merged) == len(dd_rates)
    for column in ("carrier_flights_7d", "carrier_late_rate_7d", "carrier_late_rate_28d"):
        pd.testing.assert_series_equal(merged[f"{column}_pg"].astype(float), merged[f"{column}_dd"].astype(float),
                                       check_names=False)  # fmt: skip


def test_feast_production_store_serves_from_redis_and_trains_from_postgres(built, production):
    end = built.end
    result = materialize(production, FLIGHT_DELAY, end)
    assert result.online_keys["entity_keys"] > 3000  # planes, routes, carriers and airports

    store = feature_store(production)
    latest = _postgres_mart(production, "carrier_delay_rates")
    latest = latest.sort_values("feature_timestamp").groupby("carrier").tail(1).set_index("carrier")
    online = (
        store.get_online_features(
            features=["carrier_delay_rates:carrier_flights_7d"], entity_rows=[{"carrier": c} for c in latest.index]
        )
        .to_df()
        .set_index("carrier")
    )
    assert (online["carrier_flights_7d"] == latest["carrier_flights_7d"]).all()

    known_at = end + dt.timedelta(days=2)
    entities = training_entities(production, FLIGHT_DELAY, built.days[1], built.days[-1], known_at)
    from_postgres = build_training_set(production, FLIGHT_DELAY, entities).set_index("flight_id").sort_index()
    from_duckdb = build_training_set(built.settings, FLIGHT_DELAY, entities).set_index("flight_id").sort_index()
    for feature in ("carrier_late_rate_7d", "route_distance_miles", "plane_seats", "temperature_f", "dep_hour"):
        pd.testing.assert_series_equal(from_postgres[feature].astype(float), from_duckdb[feature].astype(float),
                                       check_names=False)  # fmt: skip
