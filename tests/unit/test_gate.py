"""The evaluation gate's edge cases: thresholds, ties and tolerances, NaN, slices, behaviour, ONNX."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest

from pipelines.evaluation.gate import GatePolicy, decide

POLICY = GatePolicy(limits={"roc_auc": (0.60, None), "log_loss": (None, 0.60)}, primary="roc_auc",
                    tolerance_abs=0.005, tolerance_rel=0.01, slice_margin=0.05, slice_min_rows=300,
                    parity_tolerance=1e-4, latency_budget_ms=5.0)  # fmt: skip


def evaluation(auc=0.70, loss=0.45, slices=None, parity=1e-7, p99=0.05, behaviour_ok=True) -> dict:
    return {
        "holdout": {"roc_auc": auc, "log_loss": loss, "rows": 5000},
        "slices": slices if slices is not None else {"carrier": {"UA": {"rows": 1000, "roc_auc": auc}}},
        "behaviour": [{"name": "direction_route_late_rate", "passed": behaviour_ok, "detail": {"mean_change": 0.01}}],
        "onnx": {"parity": parity, "latency_ms": {"p50": 0.02, "p99": p99}},
    }


def failed(report) -> set[str]:
    return {c["name"] for c in report.checks if not c["passed"]}


def test_a_good_first_candidate_passes_every_check():
    report = decide(evaluation(), POLICY)
    assert report.passed and report.reasons == []
    assert {c["name"] for c in report.checks} >= {"roc_auc", "log_loss", "onnx_parity", "onnx_latency_p99_ms"}


@pytest.mark.parametrize(
    ("kwargs", "check"),
    [({"auc": 0.59}, "roc_auc"), ({"loss": 0.61}, "log_loss"), ({"parity": 2e-4}, "onnx_parity"),
     ({"p99": 7.5}, "onnx_latency_p99_ms"), ({"behaviour_ok": False}, "behaviour:direction_route_late_rate")],
)  # fmt: skip
def test_each_absolute_limit_rejects_with_a_reason(kwargs, check):
    report = decide(evaluation(**kwargs), POLICY)
    assert not report.passed
    assert failed(report) == {check}
    assert len(report.reasons) == 1 and report.reasons[0]


@pytest.mark.parametrize("field", ["auc", "loss", "parity", "p99"])
def test_nan_never_passes(field):
    report = decide(evaluation(**{field: math.nan}), POLICY)
    assert not report.passed
    assert any("not a number never passes" in reason for reason in report.reasons)


def test_nan_in_the_champion_does_not_let_a_candidate_through():
    champion = evaluation(auc=math.nan)
    report = decide(evaluation(), POLICY, champion, 1)
    assert "roc_auc_vs_champion" in failed(report)


def test_a_tie_with_the_champion_passes():
    assert decide(evaluation(auc=0.70, loss=0.45), POLICY, evaluation(auc=0.70, loss=0.45), 3).passed


def test_regression_inside_the_tolerance_passes_and_outside_fails():
    champion = evaluation(auc=0.70, loss=0.45)
    # tolerance = max(0.005, 1% of 0.70 = 0.007) = 0.007
    assert decide(evaluation(auc=0.6935, loss=0.45), POLICY, champion, 3).passed
    report = decide(evaluation(auc=0.6925, loss=0.45), POLICY, champion, 3)
    assert failed(report) == {"roc_auc_vs_champion"}
    assert "regresses against champion v3" in report.reasons[0]
    # log loss: tolerance = max(0.005, 1% of 0.45 = 0.0045) = 0.005
    assert failed(decide(evaluation(auc=0.70, loss=0.456), POLICY, champion, 3)) == {"log_loss_vs_champion"}


def test_a_slice_worse_than_the_champions_by_more_than_the_margin_fails():
    champion = evaluation(
        slices={"origin": {"JFK": {"rows": 900, "roc_auc": 0.72}, "EWR": {"rows": 900, "roc_auc": 0.70}}}
    )
    candidate = evaluation(
        slices={"origin": {"JFK": {"rows": 900, "roc_auc": 0.66}, "EWR": {"rows": 900, "roc_auc": 0.66}}}
    )
    report = decide(candidate, POLICY, champion, 2)
    assert failed(report) == {"slice:origin=JFK"}  # 0.06 below: fails; EWR 0.04 below: inside the margin
    assert "slice origin=JFK" in report.reasons[0]


def test_small_or_one_class_slices_are_not_gated():
    champion = evaluation(
        slices={"carrier": {"OO": {"rows": 20, "roc_auc": 0.9}, "HA": {"rows": 800, "roc_auc": math.nan}}}
    )
    candidate = evaluation(
        slices={"carrier": {"OO": {"rows": 20, "roc_auc": 0.3}, "HA": {"rows": 800, "roc_auc": math.nan}}}
    )
    assert decide(candidate, POLICY, champion, 2).passed


def test_a_nan_slice_of_the_candidate_fails_where_the_champion_has_a_number():
    champion = evaluation(slices={"carrier": {"UA": {"rows": 800, "roc_auc": 0.7}}})
    candidate = evaluation(slices={"carrier": {"UA": {"rows": 800, "roc_auc": math.nan}}})
    assert failed(decide(candidate, POLICY, champion, 2)) == {"slice:carrier=UA"}


def test_the_report_carries_every_check_and_is_plain_data():
    report = decide(evaluation(auc=0.5), POLICY, evaluation(), 4).as_dict()
    assert report["passed"] is False and report["champion_version"] == 4
    assert report["reasons"] == [c["reason"] for c in report["checks"] if not c["passed"]]
    assert copy.deepcopy(report) == report


# A regressor's gate: lower is better for RMSE and MAE, the baseline ratio bounds skill, bias is two-sided.
REGRESSION = GatePolicy(limits={"rmse_vs_baseline": (None, 0.9), "bias": (-5.0, 5.0), "r2": (0.5, None)},
                        primary="rmse", tolerance_abs=0.5, tolerance_rel=0.02, slice_margin=10.0,
                        slice_min_rows=50, parity_tolerance=1e-4, latency_budget_ms=5.0)  # fmt: skip


def regression(rmse=40.0, ratio=0.6, bias=1.0, r2=0.8, slices=None) -> dict:
    return {
        "holdout": {"rmse": rmse, "rmse_vs_baseline": ratio, "bias": bias, "r2": r2, "rows": 400},
        "slices": slices if slices is not None else {"hour": {"8": {"rows": 60, "rmse": rmse}}},
        "behaviour": [],
        "onnx": {"parity": 1e-7, "latency_ms": {"p50": 0.02, "p99": 0.05}},
    }


@pytest.mark.parametrize(
    ("kwargs", "check"),
    [({"ratio": 0.95}, "rmse_vs_baseline"), ({"bias": -6.0}, "bias"), ({"bias": 6.0}, "bias_max"),
     ({"r2": 0.4}, "r2"), ({"ratio": math.nan}, "rmse_vs_baseline")],
)  # fmt: skip
def test_a_regressors_limits_reject_with_a_reason(kwargs, check):
    report = decide(regression(**kwargs), REGRESSION)
    assert failed(report) == {check} and report.reasons[0]


def test_a_regressor_is_compared_with_the_champion_where_lower_is_better():
    champion = regression(ratio=0.60, r2=0.80)
    # rmse_vs_baseline: tolerance max(0.5, 2% of 0.6) = 0.5 -> anything up to 1.1 passes the comparison
    assert decide(regression(ratio=0.85, r2=0.80), REGRESSION, champion, 1).passed
    # r2 (higher is better): 0.8 - max(0.5, 0.016) = 0.3 -> the limit 0.5 bites first
    worse = decide(regression(ratio=0.60, r2=0.45), REGRESSION, champion, 1)
    assert failed(worse) == {"r2"}
    # bias is bounded, never ranked against the champion
    assert not any(c["name"] == "bias_vs_champion" for c in worse.checks)


def test_a_regressors_slice_fails_when_its_rmse_rises_beyond_the_margin():
    champion = regression(slices={"hour": {"8": {"rows": 60, "rmse": 50.0}, "17": {"rows": 60, "rmse": 70.0}}})
    candidate = regression(slices={"hour": {"8": {"rows": 60, "rmse": 61.0}, "17": {"rows": 60, "rmse": 75.0}}})
    report = decide(candidate, REGRESSION, champion, 1)
    assert failed(report) == {"slice:hour=8"}
    assert "RMSE 61.0000 is more than 10.0 above the champion's 50.0000" in report.reasons[0]


def test_the_log_loss_skill_is_zero_for_the_base_rate_whatever_the_base_rate():
    """1 - log loss / that of a constant at the holdout's own late rate (the classifier's R²): knowing only
    the base rate scores 0 in a week an eighth of the flights are late and in one nearly half are, while
    its log loss goes from 0.37 to 0.69; a coin flip is below 0; evidence lifts it towards 1."""
    from pipelines.evaluation.metrics import classification_scores

    rng = np.random.default_rng(7)
    for rate, entropy in ((0.12, 0.367), (0.45, 0.688)):
        y = (rng.random(20_000) < rate).astype(int)
        constant = classification_scores(y, np.full(len(y), y.mean()))
        assert constant["log_loss"] == pytest.approx(entropy, abs=0.01)
        assert constant["log_loss_skill"] == pytest.approx(0.0, abs=1e-9)
        assert classification_scores(y, np.full(len(y), 0.5))["log_loss_skill"] < 0, "a coin flip has no skill"
        odds = rate / (1 - rate) * np.where(y == 1, 3.0, 1 / 3)  # a likelihood ratio of 3 either way
        some = classification_scores(y, odds / (1 + odds))["log_loss_skill"]
        near_perfect = classification_scores(y, np.where(y == 1, 0.999, 0.001))["log_loss_skill"]
        assert 0.3 < some < near_perfect and near_perfect > 0.99
    assert math.isnan(classification_scores(np.zeros(100, dtype=int), np.full(100, 0.1))["log_loss_skill"])


def test_a_skill_limit_rejects_below_its_minimum_and_a_lower_skill_than_the_champions():
    policy = GatePolicy(limits={"log_loss_skill": (0.02, None)}, primary="roc_auc", tolerance_abs=0.005,
                        tolerance_rel=0.01, slice_margin=0.05, slice_min_rows=300, parity_tolerance=1e-4,
                        latency_budget_ms=5.0)  # fmt: skip

    def skilled(skill):
        return {**evaluation(), "holdout": {"roc_auc": 0.7, "log_loss_skill": skill, "rows": 5000}}

    assert decide(skilled(0.03), policy).passed
    report = decide(skilled(0.015), policy)
    assert failed(report) == {"log_loss_skill"} and "log-loss skill 0.0150 is below the minimum 0.02" in report.reasons
    assert failed(decide(skilled(0.10), policy, skilled(0.11), 2)) == {"log_loss_skill_vs_champion"}
    assert decide(skilled(0.106), policy, skilled(0.11), 2).passed  # inside the 0.005 tolerance
