"""The backfill DAG run by Airflow itself (`airflow dags test`) over a range of days: the same marts and online
features as the same days built one at a time, a validated partition and result per day; a bad day stops the
range at validation, naming the day, and nothing of the range reaches the warehouse or the online store.
Its cost against the ingest DAG's day-by-day runs: bench/ingest_cost.py."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import sqlite3

import duckdb
import pandas as pd
import pytest

from pipelines.features.store import online_key_counts
from pipelines.ingest import partition_path
from pipelines.ingest.sources.package_file import default_source_dir
from pipelines.orchestration import local_airflow
from tests.conftest import FLIGHT_DELAY, make_settings, write_flights_source
from tests.integration.conftest import built  # noqa: F401  (the session's day-by-day build)

pytestmark = pytest.mark.e2e
MARTS = {"flights": ["flight_id"], "carrier_delay_rates": ["carrier", "as_of_date"],
         "route_delay_rates": ["route", "as_of_date"]}  # fmt: skip


def _backfill(settings, first: dt.date, last: dt.date) -> tuple[dict[str, str], str]:
    """`airflow dags test` of the backfill DAG for [first, last]; its task states and what it printed."""
    dag_id = FLIGHT_DELAY.dag_id("backfill")
    conf = json.dumps({"first_day": first.isoformat(), "last_day": last.isoformat()})
    done = local_airflow.airflow(settings, "dags", "test", dag_id, "-c", conf, check=False)
    with sqlite3.connect(settings.airflow_dir / "airflow.db") as con:
        rows = con.execute("SELECT task_id, state FROM task_instance WHERE dag_id = ?", (dag_id,)).fetchall()
    return dict(rows), done.stdout + done.stderr


def _mart(settings, mart: str) -> pd.DataFrame:
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        return con.execute(f"SELECT * FROM marts.{mart}").df()  # nosec B608 # a fixed mart name


def _platform(root, source=None):
    settings = make_settings(root / "var", **({"source_dir": source} if source else {}))
    local_airflow.prepare(settings)
    return settings


def test_a_range_in_four_tasks_builds_what_day_by_day_runs_build(built, tmp_path):  # noqa: F811
    settings = _platform(tmp_path)
    states, _ = _backfill(settings, built.days[0], built.days[-1])

    assert states == {"land": "success", "validate": "success", "transform": "success", "materialize": "success"}
    for day in built.days:  # each day its own landed partition, validated by its suite
        assert partition_path(settings, "flights", day).exists()
        result = json.loads((settings.validation_dir / "results" / "flights" / f"{day}.json").read_text())
        assert result["success"] and result["evaluated"] > 10
    for mart, keys in MARTS.items():
        by_day = _mart(built.settings, mart).set_index(keys).sort_index()
        ranged = _mart(settings, mart).set_index(keys).sort_index()
        common = by_day.index.intersection(ranged.index)
        assert len(common) == len(by_day), f"{mart}: rows the day-by-day build has are missing from the backfill"
        pd.testing.assert_frame_equal(by_day.loc[common], ranged.loc[common], check_like=True)
    assert online_key_counts(settings, FLIGHT_DELAY) == online_key_counts(built.settings, FLIGHT_DELAY)


def test_a_bad_day_stops_the_range_before_anything_is_loaded(tmp_path):
    source = tmp_path / "source"
    shutil.copytree(default_source_dir(FLIGHT_DELAY.sources), source)
    flights = pd.read_csv(source / "flights.csv.zip")
    bad = flights.index[(flights.month == 1) & (flights.day == 2)][0]
    flights.loc[bad, "carrier"] = "ZZ"  # an unknown carrier on the second day
    write_flights_source(source / "flights.csv.zip", flights)
    settings = _platform(tmp_path, source)

    states, output = _backfill(settings, dt.date(2013, 1, 1), dt.date(2013, 1, 3))

    assert states["land"] == "success" and states["validate"] == "failed"
    assert states["transform"] == states["materialize"] == "upstream_failed"
    result = json.loads((settings.validation_dir / "results" / "flights" / "2013-01-02.json").read_text())
    assert not result["success"] and any("column=carrier" in f for f in result["failed"])
    assert not (settings.validation_dir / "results" / "flights" / "2013-01-03.json").exists()  # stopped there
    assert not settings.warehouse_path.exists() or not _loaded_days(settings)
    assert not (settings.feast_dir / "online_store.db").exists()
    assert "raw flights partition 2013-01-02 failed" in output


def _loaded_days(settings) -> list:
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables "
                                            "WHERE table_schema = 'raw'").fetchall()}  # fmt: skip
        return con.execute("SELECT DISTINCT logical_date FROM raw.flights").fetchall() if "flights" in tables else []
