"""A week of July traffic against a January-March champion, end to end through Airflow and the real
model service, day by day in time order (pipelines/orchestration/operations.py): each day served
through the service on what the online store knew at its start, then landed by the ingest DAG,
then judged by the monitoring DAG; the retrain request runs the training DAG, whose candidate passes
the gate and enters the canary through the deploy DAG under the next day's consumer traffic."""

from __future__ import annotations

import datetime as dt
import json
from urllib.parse import urlparse

import pytest

from pipelines.features.store import materialize
from pipelines.orchestration import local_airflow, monitoring, training
from pipelines.orchestration.operations import operate
from pipelines.registry.registry import Registry
from pipelines.security.audit import audit_ledger
from pipelines.security.store import artifact_store
from pipelines.security.vault import evaluation_vault
from pipelines.usecases.spec import resolve_usecase, windows, with_overrides
from serving.auth import create_key
from serving.client import register_service
from serving.local import wait_ready
from tests.conftest import FLIGHT_DELAY
from tests.e2e.conftest import serve

pytestmark = pytest.mark.e2e

MODEL, CHAMPION_END, JULY = "flight_delay", dt.date(2013, 3, 31), dt.date(2013, 7, 1)
CANARY = {"canary_steps": [10, 50, 100], "canary_observe_seconds": 2, "canary_max_wait_seconds": 60,
          "canary_min_predictions": 40}  # fmt: skip


@pytest.fixture(scope="module")
def operated(season, openbao, tmp_path_factory):
    """The session's season (January to August built; serving never reads the warehouse, and the July
    days are landed again by the ingest DAG, validated), the champion fitted on January to March
    (62/14/14 days), the online store as of 1 July 00:00, then July operated until the first release,
    retraining on 21/7/7-day windows. Two breaching days in a row request a retrain here (the shipped
    three: make run, and the backtest's detection delay), to keep the suite's time."""
    root = tmp_path_factory.mktemp("july")
    settings = season.model_copy(update={"airflow_home": root / "airflow", **CANARY})
    settings = with_overrides(settings, MODEL, {"monitoring.retraining.consecutive_days": 2})
    first = with_overrides(settings, MODEL, windows(62, 14, 14))
    folder = training.prepare_run(first, MODEL, CHAMPION_END, "january-march")
    training.train_candidate(first, folder, "xgboost")
    champion = training.gate_and_register(first, folder, ["xgboost"])["champion"]
    materialize(
        settings, FLIGHT_DELAY, dt.datetime.combine(JULY, dt.time(), FLIGHT_DELAY.tz)
    )  # retrains: the spec's 21/7/7
    local_airflow.prepare(settings)
    key = create_key(openbao.root, "july-consumers", ["predict"])
    with serve(settings, openbao, root) as base:
        register_service(openbao.root, settings, urlparse(base).port, create_key(openbao.root, "july-deployer",
                                                                                  ["admin", "predict"]))  # fmt: skip
        wait_ready(base)
        days = operate(settings, resolve_usecase(settings, MODEL), JULY, JULY + dt.timedelta(days=6), base, key)
        status = wait_ready(base)["usecases"][MODEL]
    return settings, champion, days, status


def test_a_week_of_july_traffic_requests_a_retrain_through_the_monitoring_dag(operated):
    settings, champion, days, _ = operated
    requested = [d for d in days if d.decision["retrain"]]
    assert len(requested) == 1 and len(days) <= 7, [d.decision for d in days]
    request = requested[0]
    assert request.monitoring["version"] == champion
    assert request.decision["window_end"] == request.day.isoformat()
    for day in days:  # each day was served through the service, then landed, then judged on its labels
        assert day.monitoring["assessment"]["rows"] > 500
        performance = day.monitoring["performance"]
        assert performance["rows"] > 500 and 0.5 < performance["roc_auc"] <= 1
        assert set(performance["slices"]) >= {"origin=EWR", "origin=JFK", "origin=LGA"}
        assert day.monitoring["variants"]["variants"]["champion"]["rows"] == performance["rows"]
        assert "(0 failed)" in day.served, day.served
        folder = monitoring.day_folder(settings, MODEL, day.day)  # alibi-detect ran in the drift virtualenv
        drift = json.loads((folder / "drift.json").read_text())
        assert drift["multivariate"]["rows_per_side"] > 0 and set(drift["categorical"]) == {"carrier", "origin"}
        page = (folder / "report.html").read_text()
        assert day.day.isoformat() in page and "<svg" in page and "Every variant" in page
    ledger = [r for r in audit_ledger(settings).records() if r.action == "monitoring.retrain_requested"]
    assert [r.details["window_end"] for r in ledger] == [request.day.isoformat()]


def test_the_candidate_passes_the_gate_and_enters_the_canary(operated):
    settings, champion, days, status = operated
    request = days[-1]
    assert request.training is not None and request.training["champion_before"] == champion
    challenger = request.training.get("challenger")
    assert challenger, request.training  # passed the gate against the January-March champion
    release = request.release
    assert release is not None and release.alias == "challenger" and release.version == challenger
    assert release.sent > 0 and release.answered == release.sent  # consumers never saw the release
    deployment = json.loads((settings.data_root / "deployments" / f"flight_delay-v{challenger}.json").read_text())
    steps = deployment["steps"]
    assert steps and steps[0]["weight"] == 10 and steps[0]["challenger"]["predictions"] >= 40, deployment
    ledger = audit_ledger(settings)
    registry = Registry(artifact_store(settings, ledger), evaluation_vault(settings), ledger)
    window = registry.manifest("flight_delay", challenger)["training"]["window"]
    assert window["holdout_end"] == request.day.isoformat()
    if release.released:  # promoted through every step
        assert registry.alias("flight_delay", "champion")["version"] == challenger
        assert [v["version"] for v in status["variants"]] == [challenger]


def test_the_deploy_dag_built_the_bento_of_the_model_service(operated):
    """The deploy DAG's first task: `bentoml build` of the code and dependencies (models load from the
    registry); a rebuild never walks the Bento store or the virtualenvs."""
    from pipelines.orchestration import deploy

    settings = operated[0]
    built = [r.subject for r in audit_ledger(settings).records() if r.action == "deployment.bento_built"]
    assert len(built) == 1 and built[0].startswith("model_service:")
    source = settings.data_root / "bentoml" / "bentos" / "model_service" / built[0].split(":")[1] / "src"
    assert sorted(p.name for p in source.iterdir()) == ["bentofile.yaml", "expectations", "feature_repo", "pipelines",
                                                        "pyproject.toml", "serving", "usecases"]  # fmt: skip
    assert sorted(p.name for p in (source / "usecases").iterdir()) == ["bike_rentals", "flight_delay"]
    assert deploy.build_bento(settings) != built[0]
