"""A warehouse and feature store built once per session from real days of flights,
the way the ingest DAG builds them: land → validate → load → dbt build → materialize."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

import pytest

from pipelines.features.store import export_marts, materialize
from pipelines.features.transform import build_features
from pipelines.ingest import land_day, land_reference
from pipelines.ingest.warehouse import load_day, load_reference
from pipelines.security.secrets import put_connection
from pipelines.settings import Settings
from pipelines.validation import validate_partition
from tests.conftest import FIRST_DAY, FLIGHT_DELAY, free_port, make_settings

BUILT_DAYS = [FIRST_DAY + dt.timedelta(days=i) for i in range(5)]


@dataclass(frozen=True)
class BuiltPlatform:
    settings: Settings
    days: list[dt.date]

    @property
    def end(self) -> dt.datetime:
        return dt.datetime.combine(self.days[-1] + dt.timedelta(days=1), dt.time(), FLIGHT_DELAY.tz)


def build_days(settings: Settings, days: list[dt.date]) -> None:
    land_reference(settings, FLIGHT_DELAY)
    for table in FLIGHT_DELAY.sources.reference:
        validate_partition(settings, FLIGHT_DELAY, table, None)
    load_reference(settings, FLIGHT_DELAY)
    for day in days:
        land_day(settings, FLIGHT_DELAY, day)
        for table in FLIGHT_DELAY.sources.partitioned:
            validate_partition(settings, FLIGHT_DELAY, table, day)
        load_day(settings, FLIGHT_DELAY, day)
        build_features(settings, FLIGHT_DELAY, day)


@pytest.fixture(scope="session")
def built(tmp_path_factory) -> BuiltPlatform:
    settings = make_settings(tmp_path_factory.mktemp("built") / "var")
    build_days(settings, BUILT_DAYS)
    platform = BuiltPlatform(settings, BUILT_DAYS)
    export_marts(settings, FLIGHT_DELAY)
    materialize(settings, FLIGHT_DELAY, platform.end)
    return platform


@pytest.fixture(scope="session")
def moto_endpoint():
    """A real S3 API (moto server) on loopback, for the session."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


def s3_connection(openbao, conn_id: str, endpoint: str, region: str) -> None:
    """An Airflow connection in Vault to the moto server, claiming `region`."""
    extra = json.dumps({"region_name": region, "endpoint_url": endpoint})
    fields = {"conn_type": "aws", "login": "testing", "password": "testing", "extra": extra}  # pragma: allowlist secret
    put_connection(openbao.root, conn_id, fields)


@pytest.fixture
def ledger(tmp_path):
    """A fresh file ledger for one test."""
    from pipelines.security.audit import FileLedger

    return FileLedger(tmp_path / "audit" / "ledger.jsonl")


@pytest.fixture
def store(tmp_path):
    """A fresh local artifact store for one test."""
    from pipelines.security.store import LocalStore

    return LocalStore(tmp_path / "artifacts")
