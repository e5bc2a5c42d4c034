import datetime as dt
import json
import os
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from pipelines.errors import EmptyPartitionError, MissingPartitionError, SourceFormatError
from pipelines.ingest import land_day, land_reference, partition_path
from pipelines.ingest.landing import manifest_path
from pipelines.ingest.sources.package_file import default_source_dir
from tests.conftest import FIRST_DAY, FLIGHT_DELAY, make_settings, write_flights_source


@pytest.fixture(scope="module")
def source_flights() -> pd.DataFrame:
    """The published source read independently of our reader (pandas, not pyarrow)."""
    return pd.read_csv(default_source_dir(FLIGHT_DELAY.sources) / "flights.csv.zip")


def _day_rows(frame: pd.DataFrame, day: dt.date) -> pd.DataFrame:
    return frame[(frame.year == day.year) & (frame.month == day.month) & (frame.day == day.day)]


def test_landing_writes_exactly_that_days_flights(settings, source_flights):
    landed = {p.table: p for p in land_day(settings, FLIGHT_DELAY, FIRST_DAY)}
    expected = _day_rows(source_flights, FIRST_DAY)
    table = pq.read_table(landed["flights"].path).to_pandas()
    assert landed["flights"].rows == len(expected) == len(table) == 842
    assert sorted(table.flight.tolist()) == sorted(expected.flight.tolist())
    assert set(zip(table.year, table.month, table.day, strict=True)) == {(2013, 1, 1)}
    assert landed["weather"].rows > 0


def test_relanding_replaces_exactly_that_partition(settings):
    land_day(settings, FLIGHT_DELAY, FIRST_DAY)
    land_day(settings, FLIGHT_DELAY, FIRST_DAY + dt.timedelta(days=1))
    other = partition_path(settings, "flights", FIRST_DAY + dt.timedelta(days=1))
    other_before = (other.read_bytes(), other.stat().st_mtime_ns)

    target = partition_path(settings, "flights", FIRST_DAY)
    # Corrupt the landed file: a re-run must restore it, not append to it.
    pq.write_table(pq.read_table(target).slice(0, 5), target)
    first = {p.table: p for p in land_day(settings, FLIGHT_DELAY, FIRST_DAY)}
    again = {p.table: p for p in land_day(settings, FLIGHT_DELAY, FIRST_DAY)}

    assert first["flights"].sha256 == again["flights"].sha256
    assert pq.read_table(target).num_rows == 842
    assert (other.read_bytes(), other.stat().st_mtime_ns) == other_before
    leftovers = [p.name for p in target.parent.iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_a_date_outside_the_source_is_refused(settings):
    with pytest.raises(MissingPartitionError, match=r"2014-01-01.*covers 2013-01-01\.\.2013-12-31"):
        land_day(settings, FLIGHT_DELAY, dt.date(2014, 1, 1))
    assert not (settings.raw_dir / "flights").exists()


def test_an_empty_day_inside_the_source_is_refused(tmp_path, source_copy):
    flights = pd.read_csv(source_copy / "flights.csv.zip")
    flights = flights[~((flights.month == 1) & (flights.day == 2))]
    write_flights_source(source_copy / "flights.csv.zip", flights)
    settings = make_settings(tmp_path / "var", source_dir=source_copy)
    with pytest.raises(EmptyPartitionError, match="no rows for 2013-01-02"):
        land_day(settings, FLIGHT_DELAY, dt.date(2013, 1, 2))
    assert not partition_path(settings, "flights", dt.date(2013, 1, 2)).exists()


def test_a_source_missing_a_column_is_malformed(tmp_path, source_copy):
    flights = pd.read_csv(source_copy / "flights.csv.zip").drop(columns=["carrier"])
    write_flights_source(source_copy / "flights.csv.zip", flights)
    settings = make_settings(tmp_path / "var", source_dir=source_copy)
    with pytest.raises(SourceFormatError, match=r"missing column\(s\) \['carrier'\]"):
        land_day(settings, FLIGHT_DELAY, FIRST_DAY)


def test_a_value_of_the_wrong_type_is_malformed(tmp_path, source_copy):
    flights = pd.read_csv(source_copy / "flights.csv.zip")
    flights["distance"] = flights["distance"].astype(object)
    flights.loc[3, "distance"] = "far"
    write_flights_source(source_copy / "flights.csv.zip", flights)
    settings = make_settings(tmp_path / "var", source_dir=source_copy)
    with pytest.raises(SourceFormatError, match="malformed.*far"):
        land_day(settings, FLIGHT_DELAY, FIRST_DAY)


def test_a_corrupt_archive_is_malformed(tmp_path, source_copy):
    (source_copy / "flights.csv.zip").write_bytes(b"not a zip archive")
    settings = make_settings(tmp_path / "var", source_dir=source_copy)
    with pytest.raises(SourceFormatError, match="not a valid zip archive"):
        land_day(settings, FLIGHT_DELAY, FIRST_DAY)


def test_reference_tables_land_as_snapshots(settings):
    landed = {p.table: p for p in land_reference(settings, FLIGHT_DELAY)}
    assert landed["airlines"].rows == 16
    assert landed["planes"].rows == 3322
    assert landed["airports"].rows == 1458
    assert all(os.path.exists(p.path) for p in landed.values())
    manifests = {p.table: json.loads(manifest_path(Path(p.path)).read_text()) for p in landed.values()}
    assert {table: m["rows"] for table, m in manifests.items()} == {"airlines": 16, "planes": 3322, "airports": 1458}
