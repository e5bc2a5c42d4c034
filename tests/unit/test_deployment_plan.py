"""Deployment plans: valid shapes only, sticky assignment that follows the weights, canary steps that
only move the buckets they must."""

from __future__ import annotations

import pytest

from pipelines.deploy.plan import DeploymentPlan, Variant
from pipelines.errors import RegistryError

KEYS = [f"2013-01-0{d}-UA{n}-EWR" for d in range(1, 8) for n in range(3000)]


def plan(*weights: float, shadow: Variant | None = None) -> DeploymentPlan:
    names = ["champion", "challenger", "third"]
    return DeploymentPlan([Variant(names[i], i + 1, w) for i, w in enumerate(weights)], shadow)


@pytest.mark.parametrize(
    ("variants", "message"),
    [([], "one or more variants"),
     ([Variant("champion", 1, 60), Variant("champion", 2, 40)], "distinct names"),
     ([Variant("champion", 1, 90), Variant("challenger", 2, 5)], "add up to 100"),
     ([Variant("champion", 1, 100), Variant("challenger", 2, 0)], "positive")],
)  # fmt: skip
def test_invalid_plans_are_refused(variants, message):
    with pytest.raises(RegistryError, match=message):
        DeploymentPlan(variants)


def test_the_shadow_never_takes_live_traffic():
    with pytest.raises(RegistryError, match="shadow"):
        DeploymentPlan([Variant("champion", 1, 100)], shadow=Variant("champion", 1))


def test_assignment_is_sticky_and_follows_the_weights():
    split = plan(75, 25)
    first = [split.assign(k).name for k in KEYS]
    assert first == [split.assign(k).name for k in KEYS]  # the same key, the same variant
    share = first.count("challenger") / len(first)
    assert share == pytest.approx(0.25, abs=0.01)


def test_a_canary_step_keeps_every_flight_already_on_the_challenger():
    steps = [plan(95, 5), plan(75, 25), plan(50, 50), plan(0.0001, 99.9999)]
    before = {k for k in KEYS if steps[0].assign(k).name == "challenger"}
    for step in steps[1:]:
        now = {k for k in KEYS if step.assign(k).name == "challenger"}
        assert before <= now
        before = now


def test_a_plan_round_trips_through_its_stored_form():
    original = plan(90, 10, shadow=Variant("third", 3))
    assert DeploymentPlan.from_json(original.to_json()) == original
    assert original.versions() == {1, 2, 3}
