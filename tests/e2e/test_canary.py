"""Canary releases through the real service, under consumer traffic: a sound challenger walks every
step and is promoted; a broken one (shifted predictions, or failing to score) is rolled back to the
champion without a person, and consumers get a 200 from the champion throughout."""

from __future__ import annotations

import httpx
import numpy as np
import pytest

from pipelines.deploy.canary import Canary, CanaryPolicy
from pipelines.deploy.plan import DeploymentPlan, Variant, read_plan, write_plan
from pipelines.errors import DeployFailed
from pipelines.registry.registry import Registry
from pipelines.security.audit import audit_ledger
from pipelines.security.store import artifact_store
from serving import predictions
from serving.auth import create_key
from serving.client import ServiceClient
from serving.local import wait_ready
from serving.replay import ReplayLoop, day_requests
from tests.conftest import FLIGHT_DELAY
from tests.e2e.conftest import register_broken, serve

pytestmark = pytest.mark.e2e
MODEL_NAME = "flight_delay"
# Seconds-long steps: the policy is the production one, only the clock is shorter.
CANARY = {"canary_steps": [10, 50, 100], "canary_observe_seconds": 2, "canary_max_wait_seconds": 30,
          "canary_min_predictions": 40}  # fmt: skip


@pytest.fixture(scope="module")
def service(champion, openbao, built, tmp_path_factory):
    settings, version = champion
    settings = settings.model_copy(update=CANARY)
    key = create_key(openbao.root, "deployer-test", ["admin", "predict"])
    with serve(settings, openbao, tmp_path_factory.mktemp("canary")) as base:
        wait_ready(base)
        yield settings, version, base, key


@pytest.fixture
def release(service, openbao):
    """A canary controller on the service; every test starts from the champion alone."""
    settings, version, base, key = service
    ledger = audit_ledger(settings)
    registry = Registry(artifact_store(settings, ledger), openbao.role("evaluation"), ledger)
    policy = CanaryPolicy.from_settings(settings)
    endpoint = ServiceClient(base, key).endpoint(FLIGHT_DELAY)
    canary = Canary(registry, FLIGHT_DELAY, endpoint, lambda since: predictions.read(settings, FLIGHT_DELAY, since),
                    policy)  # fmt: skip
    canary.serve_champion_only(canary.champion(), "test start")
    return canary


def ledger_since(settings, seq: int) -> list:
    return [r for r in audit_ledger(settings).records() if r.seq > seq]


def ledger_head(settings) -> int:
    return max((r.seq for r in audit_ledger(settings).records()), default=0)


def test_a_sound_challenger_walks_every_step_and_is_promoted(service, release, trained_models, built):
    settings, champion, base, key = service
    challenger = trained_models[1]["challenger"]
    before = ledger_head(settings)
    with ReplayLoop(base, key, FLIGHT_DELAY, day_requests(settings, FLIGHT_DELAY, built.days[-1])) as traffic:
        release.smoke(challenger, day_requests(settings, FLIGHT_DELAY, built.days[-2])[:50])
        outcome = release.walk(challenger)
    assert outcome.promoted, outcome.render()
    assert [s.weight for s in outcome.steps] == [10, 50]
    for step in outcome.steps:
        assert step.challenger["predictions"] >= 40 and step.challenger["errors"] == 0 and not step.breaches
    assert set(traffic.statuses) == {200}
    served = {p["variant"] for a in traffic.answers for p in a["predictions"]}
    assert served == {"champion", "challenger"}  # consumers met both during the canary
    assert release.registry.alias(MODEL_NAME, "champion")["version"] == challenger
    status = httpx.post(f"{base}/status", json={}).json()["usecases"][MODEL_NAME]
    assert status["variants"] == [{"name": "champion", "version": challenger, "weight": 100.0}]
    actions = [(r.action, r.subject) for r in ledger_since(settings, before)]
    assert ("deployment.smoke_passed", f"{MODEL_NAME}/v{challenger}") in actions
    assert [a for a, s in actions if a == "deployment.canary_step"] == ["deployment.canary_step"] * 2
    assert ("deployment.promoted", f"{MODEL_NAME}/v{challenger}") in actions
    # put the original champion back for the other tests
    release.registry.promote(MODEL_NAME, champion, "champion", reason="test reset")


def test_a_challenger_with_shifted_predictions_is_rolled_back_at_the_first_step(service, release, openbao, built):
    settings, champion, base, key = service
    broken = register_broken(settings, openbao, champion, 0.99)
    before = ledger_head(settings)
    with ReplayLoop(base, key, FLIGHT_DELAY, day_requests(settings, FLIGHT_DELAY, built.days[-1])) as traffic:
        # it scores: the smoke test passes
        release.smoke(broken, day_requests(settings, FLIGHT_DELAY, built.days[-2])[:50])
        outcome = release.walk(broken)
    assert not outcome.promoted
    assert [s.weight for s in outcome.steps] == [10]
    assert any("prediction distribution shifted" in r for r in outcome.reasons), outcome.reasons
    assert release.registry.alias(MODEL_NAME, "champion")["version"] == champion
    status = httpx.post(f"{base}/status", json={}).json()["usecases"][MODEL_NAME]
    assert status["variants"] == [{"name": "champion", "version": champion, "weight": 100.0}]
    plan, _ = read_plan(release.registry, MODEL_NAME)
    assert plan.history[-1]["reason"].startswith(f"rollback of v{broken}: canary 10% breached")
    assert set(traffic.statuses) == {200}
    rollback = [r for r in ledger_since(settings, before) if r.action == "deployment.rollback"]
    assert len(rollback) == 1 and rollback[0].subject == f"{MODEL_NAME}/v{broken}"
    assert "KS statistic" in rollback[0].details["reasons"][0]


def test_a_challenger_that_cannot_score_fails_its_smoke_test_unseen_by_consumers(service, release, openbao, built):
    settings, champion, base, key = service
    broken = register_broken(settings, openbao, champion, float("nan"))
    with ReplayLoop(base, key, FLIGHT_DELAY, day_requests(settings, FLIGHT_DELAY, built.days[-1])) as traffic:
        with pytest.raises(DeployFailed, match=r"failed its smoke test: .*outside \[0, 1\]"):
            release.smoke(broken, day_requests(settings, FLIGHT_DELAY, built.days[-2])[:50])
    assert set(traffic.statuses) == {200}
    assert {p["model_version"] for a in traffic.answers for p in a["predictions"]} == {champion}
    status = httpx.post(f"{base}/status", json={}).json()["usecases"][MODEL_NAME]
    assert status["variants"] == [{"name": "champion", "version": champion, "weight": 100.0}]
    assert status["shadow"] is None


def test_live_scoring_errors_fall_back_to_the_champion_and_the_canary_rolls_back(service, release, openbao, built):
    """Past the smoke test (here skipped), a failing challenger's flights are answered by the champion,
    logged with the error, and the error rate rolls the canary back."""
    settings, champion, base, key = service
    broken = register_broken(settings, openbao, champion, float("nan"))
    flights = day_requests(settings, FLIGHT_DELAY, built.days[-1])[:200]
    _, raw = read_plan(release.registry, MODEL_NAME)
    split = DeploymentPlan([Variant("champion", champion, 50), Variant("challenger", broken, 50)], reason="test")
    write_plan(release.registry, MODEL_NAME, split, expected=raw)
    release.service.reload()
    answer = release.service.predict(flights)
    assert {p["variant"] for p in answer["predictions"]} == {"champion"}
    assert all(np.isfinite(p["probability"]) for p in answer["predictions"])
    logged = predictions.read(settings, FLIGHT_DELAY)
    mine = logged[logged.request_id == answer["request_id"]]
    failed = mine[mine.assigned_variant == "challenger"]
    assert len(failed) == pytest.approx(100, abs=30) and (failed.variant == "champion").all()
    assert (
        failed.error.str.contains("outside \\[0, 1\\]").all()
        and (mine[mine.assigned_variant == "champion"].error == "").all()
    )

    with ReplayLoop(base, key, FLIGHT_DELAY, day_requests(settings, FLIGHT_DELAY, built.days[-1])) as traffic:
        outcome = release.walk(broken)
    assert not outcome.promoted and [s.weight for s in outcome.steps] == [10]
    assert outcome.steps[0].challenger["error_rate"] == 1.0
    assert any(r.startswith("error rate 100.00%") for r in outcome.reasons), outcome.reasons
    assert set(traffic.statuses) == {200}
    assert release.registry.alias(MODEL_NAME, "champion")["version"] == champion


def test_the_ab_report_scores_variants_on_the_landed_arrivals(service, release, openbao, trained_models, built):
    """50/50 champion vs a constant-0.99 variant with the good challenger in shadow, on a replayed day
    whose arrivals are landed: the bad variant is significantly worse, the shadow is paired."""
    import datetime as dt

    from sklearn.metrics import log_loss

    from pipelines.deploy.analysis import ab_report, render
    from pipelines.features.store import labels as labels_of
    from serving.replay import replay

    settings, champion, base, key = service
    broken = register_broken(settings, openbao, champion, 0.99)
    _, raw = read_plan(release.registry, MODEL_NAME)
    plan = DeploymentPlan([Variant("champion", champion, 50), Variant("challenger", broken, 50)],
                          Variant("candidate", trained_models[1]["challenger"]), reason="A/B test")  # fmt: skip
    write_plan(release.registry, MODEL_NAME, plan, expected=raw)
    release.service.reload()
    day = built.days[-1]
    started = dt.datetime.now(dt.UTC)
    assert replay(settings, FLIGHT_DELAY, day, base, key, batch=200).failed == 0
    log, labels = predictions.read(settings, FLIGHT_DELAY, started), labels_of(settings, FLIGHT_DELAY, day, day)
    report = ab_report(FLIGHT_DELAY, log, labels)
    print(render(report))
    live = log[~log.variant.str.startswith("shadow:")].merge(labels, on="flight_id")
    assert report["variants"]["champion"]["rows"] + report["variants"]["challenger"]["rows"] == len(live)
    assert report["variants"]["shadow:candidate"]["rows"] == len(live) == len(labels)
    mine = live[live.variant == "champion"]
    assert report["variants"]["champion"]["log_loss"] == pytest.approx(
        log_loss(mine.is_late_arrival, mine.probability, labels=[0, 1]), rel=1e-9
    )
    [ab] = [c for c in report["comparisons"] if c["variant"] == "challenger"]
    assert not ab["paired"] and ab["verdict"] == "worse" and ab["ci_low"] > 0.5  # 0.99 for every flight is costly
    [shadow] = [c for c in report["comparisons"] if c["variant"] == "shadow:candidate"]
    assert shadow["paired"] and shadow["rows"] == len(labels) and shadow["verdict"] == "better"
    assert shadow["ci_low"] < shadow["mean_difference"] < shadow["ci_high"] < 0


def test_a_first_champion_is_released_at_once_and_checked_on_real_flights(service, release, openbao):
    """The deploy DAG's release for a version that became champion directly (no canary to walk)."""
    from urllib.parse import urlparse

    from pipelines.orchestration import deploy
    from serving.client import register_service

    settings, champion, base, key = service
    register_service(openbao.root, settings, urlparse(base).port, key)
    _, raw = read_plan(release.registry, MODEL_NAME)
    split = DeploymentPlan([Variant("champion", champion, 90), Variant("challenger", champion + 1, 10)], reason="t")
    write_plan(release.registry, MODEL_NAME, split, expected=raw)
    release.service.reload()
    outcome = deploy.release(settings, MODEL_NAME, "champion", champion)
    assert outcome == {"model": MODEL_NAME, "champion": champion, "promoted": True, "steps": []}
    plan, _ = read_plan(release.registry, MODEL_NAME)
    assert [(v.name, v.version, v.weight) for v in plan.variants] == [("champion", champion, 100.0)]
    assert plan.history[-1]["reason"] == "first champion"
