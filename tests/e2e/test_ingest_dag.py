"""The ingest DAG run by Airflow itself (`airflow dags test`) on real days: a clean day lands
everything; a day with bad rows stops at validation and leaves no trace downstream. Re-running a
day replaces it exactly stage by stage (tests/unit/test_landing.py, tests/integration/test_warehouse.py,
tests/integration/test_transform.py); the DAG through the scheduler on several days:
tests/e2e/test_celery_executor.py."""

from __future__ import annotations

import datetime as dt
import hashlib
import sqlite3

import duckdb
import pandas as pd
import pytest

from pipelines.features.store import online_key_counts
from pipelines.orchestration import local_airflow
from tests.conftest import FLIGHT_DELAY, make_settings, write_flights_source
from tests.e2e.conftest import dags_test

pytestmark = pytest.mark.e2e


def _count(settings, sql: str) -> int:
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        return con.execute(sql).fetchone()[0]


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def airflow_platform(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    source = root / "source"
    import shutil

    from pipelines.ingest.sources.package_file import default_source_dir

    shutil.copytree(default_source_dir(FLIGHT_DELAY.sources), source)
    settings = make_settings(root / "var", source_dir=source)
    local_airflow.prepare(settings)
    return settings


def test_a_clean_day_runs_every_task_and_materializes(airflow_platform):
    settings = airflow_platform
    day = dt.date(2013, 1, 1)
    assert dags_test(settings, FLIGHT_DELAY, "ingest", day) == {
        "land": "success", "validate": "success", "transform": "success", "materialize": "success",
        "reconcile_stream": "skipped",  # no stream processor ran: nothing to compare, said in its log
    }  # fmt: skip
    assert _count(settings, "SELECT count(*) FROM raw.flights WHERE logical_date = '2013-01-01'") == 842
    assert _count(settings, "SELECT count(*) FROM marts.flights") == 842
    keys = online_key_counts(settings, FLIGHT_DELAY)
    assert keys["origin_weather"] == 3
    assert keys["plane_features"] == 3322
    assert keys["carrier_delay_rates"] >= 14


def test_bad_rows_stop_the_run_before_anything_downstream(airflow_platform):
    settings = airflow_platform
    day = dt.date(2013, 1, 2)
    flights_zip = settings.source_dir / "flights.csv.zip"
    flights = pd.read_csv(flights_zip)
    bad = flights[(flights.month == 1) & (flights.day == 2)].head(3).copy()
    bad.loc[bad.index[0], "carrier"] = "ZZ"  # unknown carrier
    bad.loc[bad.index[1], "distance"] = -5  # negative distance
    flights = pd.concat([flights, bad.iloc[[2]]])  # a duplicated flight
    flights.loc[bad.index[0], "carrier"] = "ZZ"
    flights.loc[bad.index[1], "distance"] = -5
    write_flights_source(flights_zip, flights)

    outputs = [settings.feature_export_dir / "flights.parquet", settings.feast_dir / "online_store.db"]
    before = {path: _digest(path) for path in outputs}
    marts_before = _count(settings, "SELECT count(*) FROM marts.flights")

    states = dags_test(settings, FLIGHT_DELAY, "ingest", day)

    assert states["land"] == "success"
    assert states["validate"] == "failed"
    with sqlite3.connect(settings.airflow_dir / "airflow.db") as con:  # bad data is not retried
        tries = con.execute(
            "SELECT max(try_number) FROM task_instance WHERE task_id = 'validate' AND run_id IN "
            "(SELECT run_id FROM dag_run WHERE date(logical_date) = '2013-01-02')"
        ).fetchone()[0]
    assert tries == 1
    assert states["transform"] == states["materialize"] == states["reconcile_stream"] == "upstream_failed"
    assert _count(settings, "SELECT count(*) FROM raw.flights WHERE logical_date = '2013-01-02'") == 0
    assert _count(settings, "SELECT count(*) FROM marts.flights") == marts_before
    assert {path: _digest(path) for path in outputs} == before
    result = (settings.validation_dir / "results" / "flights" / "2013-01-02.json").read_text()
    assert "column=carrier" in result and "column=distance" in result and "compound_columns" in result
