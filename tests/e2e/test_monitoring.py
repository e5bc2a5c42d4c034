"""A persisting shift on served traffic: replayed days through the real service, the champion's
registered reference, alibi-detect in the drift virtualenv, the retraining policy (consecutive days,
one request in flight, read from the registry). Real drift, the labels, the reports and the DAG
through Airflow: tests/e2e/test_july_week.py; the null control: tests/integration/test_retrain_backtest.py."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from pipelines.orchestration import monitoring
from pipelines.security.audit import audit_ledger
from pipelines.usecases.spec import resolve_usecase, with_overrides
from serving.auth import create_key
from serving.local import wait_ready
from serving.replay import replay
from tests.conftest import FLIGHT_DELAY
from tests.e2e.conftest import serve

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def served(champion, openbao, built, tmp_path_factory):
    """The champion served and three of the built days replayed through it; a clean monitoring folder."""
    settings, version = champion
    settings = with_overrides(settings, "flight_delay", {"monitoring.retraining.consecutive_days": 2})
    key = create_key(openbao.root, "monitoring-test", ["predict"])
    with serve(settings, openbao, tmp_path_factory.mktemp("monitoring")) as base:
        wait_ready(base)
        for day in built.days[-3:]:
            assert replay(settings, FLIGHT_DELAY, day, base, key, batch=200).failed == 0
    shutil.rmtree(settings.data_root / "monitoring", ignore_errors=True)
    return settings, version


@pytest.fixture(scope="module")
def detectors(served):
    """One drift-virtualenv process for the module's windows."""
    with monitoring.DriftDetectors(served[0]) as running:
        yield running


def shift_most_used_feature(folder: str) -> str:
    """Move the feature the model relies on most by three of its reference standard deviations."""
    config = json.loads((Path(folder) / "config.json").read_text())
    feature = max(config["weights"], key=config["weights"].get)
    reference = pd.read_parquet(Path(folder) / "reference.parquet")
    current = pd.read_parquet(Path(folder) / "current.parquet")
    current[feature] = current[feature] + 3 * reference[feature].std()
    current.to_parquet(Path(folder) / "current.parquet", index=False)
    return feature


def test_a_persisting_shift_requests_one_retrain_then_waits_for_it(served, built, detectors):
    settings, _ = served
    spec = resolve_usecase(settings, "flight_delay")
    first, second = built.days[-3], built.days[-2]
    decisions = []
    for day in (first, second):
        folder = monitoring.prepare_window(settings, spec, day)
        feature = shift_most_used_feature(folder)
        report = detectors.run(folder)
        assert report["numeric"][feature]["significant"] and report["numeric"][feature]["excess"] > 0.3
        decisions.append(monitoring.assess_and_decide(settings, folder, day))
    assert any(b.startswith("feature drift") and feature in b for b in decisions[0]["assessment"]["breaches"])
    assert not decisions[0]["decision"]["retrain"] and "(1/2 consecutive days)" in decisions[0]["decision"]["reason"]
    assert decisions[1]["decision"]["retrain"] and decisions[1]["decision"]["window_end"] == second.isoformat()
    requested = [r for r in audit_ledger(settings).records() if r.action == "monitoring.retrain_requested"]
    assert requested[-1].details["window_end"] == second.isoformat()

    third = built.days[-1]  # still breaching, but the request is in flight: no second one
    folder = monitoring.prepare_window(settings, spec, third)
    shift_most_used_feature(folder)
    detectors.run(folder)
    outcome = monitoring.assess_and_decide(settings, folder, third)
    assert not outcome["decision"]["retrain"] and "still in flight" in outcome["decision"]["reason"]
