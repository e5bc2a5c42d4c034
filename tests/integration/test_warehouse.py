"""Loading validated partitions into the warehouse's raw schema: replace, never append."""

import datetime as dt

import duckdb
import pytest

from pipelines.errors import MissingPartitionError
from pipelines.ingest import land_day, land_reference
from pipelines.ingest.warehouse import load_day, load_reference
from tests.conftest import FIRST_DAY, FLIGHT_DELAY


def _count(settings, sql: str):
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        return con.execute(sql).fetchall()


def _flights_per_day(settings) -> dict[str, int]:
    return {str(day): n for day, n in _count(settings, "SELECT logical_date, count(*) FROM raw.flights GROUP BY 1")}


def test_reloading_a_day_replaces_exactly_that_day(settings):
    second = FIRST_DAY + dt.timedelta(days=1)
    land_reference(settings, FLIGHT_DELAY)
    land_day(settings, FLIGHT_DELAY, FIRST_DAY)
    land_day(settings, FLIGHT_DELAY, second)
    load_reference(settings, FLIGHT_DELAY)
    assert load_day(settings, FLIGHT_DELAY, FIRST_DAY) == {"flights": 842, "weather": 67}
    load_day(settings, FLIGHT_DELAY, second)
    load_day(settings, FLIGHT_DELAY, FIRST_DAY)
    load_reference(settings, FLIGHT_DELAY)
    assert _flights_per_day(settings) == {"2013-01-01": 842, "2013-01-02": 943}
    assert _count(settings, "SELECT count(*) FROM raw.airlines") == [(16,)]


def test_a_day_that_was_never_landed_loads_nothing(settings):
    land_day(settings, FLIGHT_DELAY, FIRST_DAY)
    load_day(settings, FLIGHT_DELAY, FIRST_DAY)
    with pytest.raises(MissingPartitionError, match="2013-01-05 was not landed"):
        load_day(settings, FLIGHT_DELAY, dt.date(2013, 1, 5))
    assert _flights_per_day(settings) == {"2013-01-01": 842}
