"""Great Expectations suites against real partitions, clean and with injected bad rows."""

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines.errors import ValidationFailed
from pipelines.ingest import land_day, land_reference, partition_path
from pipelines.settings import REPO_ROOT
from pipelines.usecases.spec import load_usecase
from pipelines.validation import validate_partition
from tests.conftest import FIRST_DAY, FLIGHT_DELAY


def test_a_clean_day_passes_every_suite_and_publishes_data_docs(settings):
    land_day(settings, FLIGHT_DELAY, FIRST_DAY)
    land_reference(settings, FLIGHT_DELAY)
    flights = validate_partition(settings, FLIGHT_DELAY, "flights", FIRST_DAY)
    weather = validate_partition(settings, FLIGHT_DELAY, "weather", FIRST_DAY)
    references = [validate_partition(settings, FLIGHT_DELAY, t, None) for t in ("planes", "airports", "airlines")]
    assert flights.success and weather.success and all(r.success for r in references)
    assert flights.evaluated >= 25 and flights.failed == []
    index = settings.validation_dir / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html"
    assert index.exists() and "raw_flights" in index.read_text()


def _tamper(settings, change) -> None:
    path = partition_path(settings, "flights", FIRST_DAY)
    frame = pq.read_table(path).to_pandas()
    frame = change(frame)
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)


def _null_key(frame):
    frame.loc[0, "carrier"] = None
    return frame


def _negative_distance(frame):
    frame.loc[0, "distance"] = -200.0
    return frame


def _unknown_carrier(frame):
    frame.loc[0, "carrier"] = "ZZ"
    return frame


def _duplicated_flight(frame):
    return pd.concat([frame, frame.iloc[[0]]], ignore_index=True)


def _wrong_type(frame):
    frame["distance"] = frame["distance"].astype(str)
    return frame


def _row_from_another_day(frame):
    frame.loc[0, "time_hour"] = frame.loc[0, "time_hour"] + pd.Timedelta(days=3)
    return frame


def _infinite_delay(frame):
    frame.loc[0, "dep_delay"] = np.inf
    return frame


@pytest.mark.parametrize(
    ("change", "failed_expectation"),
    [
        (_null_key, "expect_column_values_to_not_be_null(column=carrier)"),
        (_negative_distance, "expect_column_values_to_be_between(column=distance)"),
        (_unknown_carrier, "expect_column_values_to_be_in_set(column=carrier)"),
        (_duplicated_flight, "expect_compound_columns_to_be_unique(column_list="),
        (_wrong_type, "expect_column_values_to_be_in_type_list(column=distance)"),
        (_row_from_another_day, "expect_column_values_to_be_between(column=time_hour)"),
        (_infinite_delay, "expect_column_values_to_be_between(column=dep_delay)"),
    ],
)
def test_bad_rows_fail_validation_naming_the_expectation(settings, change, failed_expectation):
    land_day(settings, FLIGHT_DELAY, FIRST_DAY)
    _tamper(settings, change)
    with pytest.raises(ValidationFailed) as raised:
        validate_partition(settings, FLIGHT_DELAY, "flights", FIRST_DAY)
    message = str(raised.value)
    assert failed_expectation in message
    assert "Nothing downstream was run" in message
    result = settings.validation_dir / "results" / "flights" / f"{FIRST_DAY}.json"
    assert '"success": false' in result.read_text()


def test_row_count_bounds_come_from_the_spec(settings):
    strict = load_usecase(REPO_ROOT / "usecases", "flight_delay", {"sources.tables.flights.rows_per_day": [900, 1000]})
    land_day(settings, strict, FIRST_DAY)  # 842 flights
    with pytest.raises(ValidationFailed, match="expect_table_row_count_to_be_between"):
        validate_partition(settings, strict, "flights", FIRST_DAY)


def test_an_unlanded_partition_is_not_validated(settings):
    from pipelines.errors import MissingPartitionError

    with pytest.raises(MissingPartitionError, match="was not landed"):
        validate_partition(settings, FLIGHT_DELAY, "flights", dt.date(2013, 3, 1))
