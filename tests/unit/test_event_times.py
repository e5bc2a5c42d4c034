"""When an event became known: a local clock placed in its place's time zone exactly as the warehouse's
`AT TIME ZONE` places it (dbt computes the batch's side with it), one row at a time (the processor) and a
whole table at once (the replayer, the reconciliation)."""

from __future__ import annotations

import datetime as dt

import duckdb
import pyarrow as pa
import pytest

from pipelines.streaming.events import Timing, timing, wall_to_utc
from tests.conftest import FLIGHT_DELAY, make_settings

ARRIVALS = FLIGHT_DELAY.streaming.streams["flight_arrivals"]


@pytest.mark.parametrize(
    "wall",
    ["2013-03-10 01:59", "2013-03-10 02:30", "2013-03-10 03:00", "2013-11-03 00:59", "2013-11-03 01:30",
     "2013-11-03 02:00", "2013-07-01 12:00", "2013-01-01 00:00"],
)  # fmt: skip
@pytest.mark.parametrize("zone", ["America/Los_Angeles", "America/Denver", "America/Phoenix", "Pacific/Honolulu"])
def test_a_wall_clock_lands_where_the_warehouse_puts_it_across_the_clock_changes(wall, zone):
    """A clock the spring change skips (02:30) and one the autumn change repeats (01:30)."""
    expected = duckdb.sql(f"select cast('{wall}' as timestamp) at time zone '{zone}'").fetchone()[0]
    assert wall_to_utc(dt.datetime.fromisoformat(wall), zone) == expected.astimezone(dt.UTC)


def test_a_whole_years_arrivals_are_placed_the_same_one_at_a_time_and_all_at_once(tmp_path):
    """The processor times each event with `at`, the replayer and the reconciliation a whole table with `of`:
    both agree on every flight of 2013, the clock changes and the arrivals after midnight among them."""
    from pipelines.ingest.sources.package_file import read_table

    settings = make_settings(tmp_path / "var")
    flights = read_table(settings, FLIGHT_DELAY, "flights")
    clock = timing(settings, FLIGHT_DELAY, ARRIVALS)
    assert {"SJU", "BQN", "STT", "PSE"} <= set(clock.zones), "the dbt seed's places the airports table lacks"
    table = flights.select(ARRIVALS.carried)
    together = clock.of(table).to_pylist()
    alone = [clock.at(row) for row in table.to_pylist()]
    assert together == alone
    landed = [t for t in together if t is not None]
    assert len(landed) == flights.num_rows - flights["arr_delay"].null_count > 320_000
    first = table.slice(0, 1).to_pylist()[0]  # UA 1545 EWR-IAH, 2013-01-01, due 08:19 Houston time, 11 min late
    assert (first["dest"], first["sched_arr_time"], first["arr_delay"]) == ("IAH", 819, 11)
    assert clock.at(first) == dt.datetime(2013, 1, 1, 14, 30, tzinfo=dt.UTC)


def test_an_arrival_after_midnight_is_on_the_next_day_and_one_without_a_place_or_delay_has_no_time():
    clock = Timing(ARRIVALS.event_time, {"LAX": "America/Los_Angeles"})
    red_eye = {"year": 2013, "month": 7, "day": 4, "sched_dep_time": 2130, "sched_arr_time": 45, "dest": "LAX",
               "arr_delay": -5.0}  # fmt: skip
    assert clock.at(red_eye) == dt.datetime(2013, 7, 5, 7, 40, tzinfo=dt.UTC)  # 00:45 PDT on the 5th, 5 min early
    assert clock.at({**red_eye, "dest": "XYZ"}) is None, "a place without a time zone cannot be placed"
    assert clock.at({**red_eye, "arr_delay": None}) is None, "a diverted or cancelled flight never arrives"
    rows = pa.Table.from_pylist([red_eye, {**red_eye, "dest": "XYZ"}, {**red_eye, "arr_delay": None}])
    assert clock.of(rows).to_pylist() == [dt.datetime(2013, 7, 5, 7, 40, tzinfo=dt.UTC), None, None]
