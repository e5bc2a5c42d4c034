"""The PostgreSQL prediction log (production) against a real server: the same rows and columns as
the Parquet log, NaN features kept, one transaction per request, exact counts under concurrent writers,
one log per use case in the same table."""

from __future__ import annotations

import datetime as dt
import math
from concurrent.futures import ThreadPoolExecutor

import pandas as pd
import psycopg2
import pytest

from pipelines.security.secrets import LOCAL_POSTGRES, put_connection
from pipelines.settings import REPO_ROOT, load_settings
from pipelines.usecases.spec import load_usecase
from serving.predictions import ParquetLog, PostgresLog
from tests.conftest import FLIGHT_DELAY, fresh_postgres_database

BIKES = load_usecase(REPO_ROOT / "usecases", "bike_rentals")


def rows(n: int, variant: str = "champion") -> list[dict]:
    return [
        {
            "flight_id": f"2013-01-05-UA{i}-EWR", "carrier": "UA", "origin": "EWR", "destination": "IAH",
            "scheduled_departure": dt.datetime(2013, 1, 5, 17, 30), "variant": variant, "assigned_variant": variant,
            "model_version": 3, "probability": 0.25 + i / 1000, "late": False, "decision": "model", "error": "",
            "score_ms": 0.4, "latency_ms": 3.5, "caller": "consumer", "dep_hour": 17.0,
            "temp": math.nan if i % 2 else 41.0,
        }
        for i in range(n)
    ]  # fmt: skip


@pytest.fixture(scope="module")
def logs(openbao, tmp_path_factory):
    with fresh_postgres_database("predictions_test") as url:
        database = url.rsplit("/", 1)[1]
        conn_id = f"platform_postgres_{database}"
        put_connection(openbao.root, conn_id, {**LOCAL_POSTGRES, "schema": database})
        root = tmp_path_factory.mktemp("predlog")
        settings = load_settings(data_root=root, prediction_log="postgres", postgres_conn_id=conn_id)
        yield PostgresLog(settings, FLIGHT_DELAY), ParquetLog(settings, FLIGHT_DELAY), url, settings


def test_postgres_and_parquet_logs_read_back_the_same_rows(logs):
    postgres, parquet, _, _ = logs
    since = dt.datetime.now(dt.UTC)
    for log in (postgres, parquet):
        log.write("req-same", rows(5))
    a, b = postgres.read(since), parquet.read(since)
    a, b = a[a.request_id == "req-same"], b[b.request_id == "req-same"]
    columns = sorted(b.columns)
    assert sorted(a.columns) == columns
    a, b = (
        a[columns].sort_values("flight_id").reset_index(drop=True),
        b[columns].sort_values("flight_id").reset_index(drop=True),
    )
    pd.testing.assert_frame_equal(a.drop(columns="logged_at"), b.drop(columns="logged_at"), check_dtype=False)
    assert a.temp.isna().sum() == 2  # NaN features survive (JSON could not carry them)


def test_a_human_review_answer_is_logged_unscored_in_both_logs(logs):
    """An objecting subject's item: no model version, no probability, no features, `decision` human_review."""
    postgres, parquet, _, _ = logs
    since = dt.datetime.now(dt.UTC)
    reviewed = {**rows(1)[0], "variant": "human_review", "assigned_variant": "human_review", "model_version": None,
                "probability": None, "late": None, "decision": "human_review", "score_ms": 0.0}  # fmt: skip
    del reviewed["dep_hour"], reviewed["temp"]
    for log in (postgres, parquet):
        log.write("req-review", [reviewed, rows(2)[1]])
    for log in (postgres, parquet):
        got = log.read(since).set_index("flight_id")
        assert list(got["decision"]) == ["human_review", "model"], log
        first = got.iloc[0]
        assert pd.isna(first["model_version"]) and pd.isna(first["probability"]) and pd.isna(first["late"]), log


def test_a_request_is_logged_whole_or_not_at_all(logs):
    postgres, _, url, _ = logs
    broken = rows(3)
    broken[2]["variant"] = None  # violates NOT NULL: the whole request must roll back
    with pytest.raises(psycopg2.IntegrityError):
        postgres.write("req-broken", broken)
    with psycopg2.connect(url) as con, con.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM serving.predictions WHERE request_id = 'req-broken'")
        assert cursor.fetchone()[0] == 0


def test_concurrent_writers_lose_nothing(logs):
    postgres, _, url, _ = logs
    since = dt.datetime.now(dt.UTC)
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda i: postgres.write(f"req-par-{i}", rows(7, "challenger")), range(40)))
    logged = postgres.read(since)
    mine = logged[logged.request_id.str.startswith("req-par-")]
    assert len(mine) == 280 and mine.request_id.nunique() == 40


def test_each_use_case_reads_its_own_rows_in_its_own_names(logs):
    """A regressor's answers (`prediction`, no decision) beside the flights' in the same table."""
    flights, _, _, settings = logs
    since = dt.datetime.now(dt.UTC)
    hours = [{"hour_id": f"2011-05-13T{h:02d}", "hour_start": dt.datetime(2011, 5, 13, h), "temp_c": 18.0,
              "feels_like_c": 19.0, "humidity_pct": 60.0, "wind_speed": 9.0, "weather_code": 1, "is_holiday": 0,
              "is_workingday": 1, "variant": "champion", "assigned_variant": "champion", "model_version": 1,
              "prediction": 120.5 + h, "error": "", "score_ms": 0.3, "latency_ms": 2.0, "caller": "fleet",
              "riders_same_hour_7d": math.nan if h == 3 else 100.0} for h in range(4)]  # fmt: skip
    bikes = PostgresLog(settings, BIKES)
    bikes.write("req-bikes", hours)
    flights.write("req-flights", rows(2))
    mine = bikes.read(since)
    assert list(mine.request_id.unique()) == ["req-bikes"] and len(mine) == 4
    assert mine.prediction.tolist() == [120.5, 121.5, 122.5, 123.5]
    assert mine.hour_start.tolist() == [pd.Timestamp(2011, 5, 13, h) for h in range(4)]
    assert mine.weather_code.tolist() == [1] * 4 and mine.riders_same_hour_7d.isna().sum() == 1
    assert "late" not in mine.columns and "probability" not in mine.columns
    assert set(flights.read(since).request_id) == {"req-flights"}
