"""The shipped retraining policy on real data, through the library (pipelines/monitoring/backtest.py):
January to August 2013 built through the platform's stages, a January-March champion served over
April to August with the monitoring DAG's detectors, assessment and decision, candidates gated by the
training DAG's gate; a step to July traffic; 10 null pairs (`make bench` draws 20: the same first 10 and
10 more). The figures are printed (pytest -s)."""

from __future__ import annotations

import datetime as dt

import pytest

from pipelines.monitoring.backtest import Scenario, evaluate_policy, render
from pipelines.monitoring.policy import RetrainPolicy
from pipelines.usecases.spec import resolve_usecase

pytestmark = pytest.mark.integration
SCENARIO = Scenario(pairs=10)


@pytest.fixture(scope="module")
def outcome(season, tmp_path_factory):
    folder = tmp_path_factory.mktemp("backtest")
    spec = resolve_usecase(season, "flight_delay")
    result = evaluate_policy(season, spec, RetrainPolicy.of(spec.monitoring.retraining), SCENARIO, folder)
    print(render("shipped", result))
    return result


def test_the_policy_retrains_before_august_and_the_retrained_champion_beats_the_stale_one(outcome):
    replay = outcome["replay"]
    assert replay["first_promoted"] is not None and replay["first_promoted"] < "2013-08-01", replay["requests"]
    assert replay["payoffs"], "no promoted retrain was followed by served days"
    for payoff in replay["payoffs"]:
        if payoff["days"] >= 14:  # the following weeks
            assert payoff["served"] < payoff["stale"], payoff
    assert replay["served_log_loss"] < replay["stale_log_loss"] - 0.005  # measured: 0.0093 (make bench)


def test_retrains_no_more_often_than_the_cooldown_allows(outcome):
    cooldown = outcome["policy"]["cooldown_days"]
    days = [dt.date.fromisoformat(r["day"]) for r in outcome["replay"]["requests"]]
    assert len(days) <= (SCENARIO.last - SCENARIO.champion_end).days // cooldown + 1
    assert all((b - a).days >= cooldown for a, b in zip(days, days[1:], strict=False)), days


def test_a_week_of_july_traffic_requests_a_retrain_whose_candidate_passes_the_gate(outcome):
    step = outcome["step"]
    assert step["delay_days"] is not None and step["delay_days"] <= 7, step
    assert step["promoted"], step


def test_the_null_control_raises_few_false_alarms(outcome):
    null = outcome["null"]
    assert null["pairs"] == 10
    assert null["false_alarm_rate"] <= 0.15, null  # measured: 1 of 20 pairs (make bench)
