"""The model service in the production configuration of its prediction log (PostgreSQL): under a
burst beyond its concurrency limit, the logged predictions equal the flights of the 200 responses."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from pipelines.security.secrets import LOCAL_POSTGRES, put_connection
from serving import predictions
from serving.auth import create_key
from serving.local import wait_ready
from tests.conftest import FLIGHT_DELAY, fresh_postgres_database
from tests.e2e.conftest import auth, flight, serve

pytestmark = pytest.mark.e2e


def test_under_load_every_200_is_in_the_postgres_log(champion, openbao, tmp_path):
    settings, version = champion
    key = create_key(openbao.root, "consumer-pg", ["predict"])
    with fresh_postgres_database("serving_log") as url:
        database = url.rsplit("/", 1)[1]
        conn_id = f"platform_postgres_{database}"
        put_connection(openbao.root, conn_id, {**LOCAL_POSTGRES, "schema": database})
        settings = settings.model_copy(update={"prediction_log": "postgres", "postgres_conn_id": conn_id})
        with serve(settings, openbao, tmp_path) as base:
            wait_ready(base)
            body = {"flights": [flight(n) for n in range(200)]}

            def call(_: int) -> httpx.Response:
                return httpx.post(f"{base}/predict", json=body, headers=auth(key), timeout=120)

            with ThreadPoolExecutor(max_workers=64) as pool:
                responses = list(pool.map(call, range(64)))
        statuses = [r.status_code for r in responses]
        assert set(statuses) <= {200, 429} and statuses.count(200) > 0, statuses
        logged = predictions.read(settings, FLIGHT_DELAY)
        answered = {r.json()["request_id"] for r in responses if r.status_code == 200}
        assert set(logged.request_id) == answered
        assert len(logged) == len(answered) * 200
        assert set(logged.model_version) == {version}
        assert not (settings.data_root / "predictions").exists() or not any(
            r in str(p) for p in (settings.data_root / "predictions").rglob("*.parquet") for r in answered
        )  # nothing went to the Parquet log
