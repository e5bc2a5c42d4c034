"""The retraining policy on assessments: each kind of evidence, performance pooled over a model's
last days, too few flights, consecutive days, cooldown and a request in flight."""

from __future__ import annotations

import datetime as dt

import pytest

from pipelines.monitoring.policy import Assessment, RetrainPolicy, assess, decide

POLICY = RetrainPolicy(min_rows=300, max_feature_drift=0.05, max_prediction_drift=0.10, max_loss_ratio=1.20,
                       max_bias=0.08, consecutive=2, cooldown_days=7, performance_days=7)  # fmt: skip
CONFIG = {"reference_loss": 0.45}


def report(rows=1000, excess=None, weights=None, prediction_excess=0.0) -> dict:
    excess = excess or {"temp": 0.0, "dep_hour": 0.0}
    weights = weights or {"temp": 0.2, "dep_hour": 0.8}
    return {
        "rows": {"current": rows, "reference": 2000},
        "numeric": {n: {"excess": e, "weight": weights[n]} for n, e in excess.items()},
        "predictions": {"excess": prediction_excess},
    }


def day(n: int) -> dt.date:
    return dt.date(2013, 4, 1) + dt.timedelta(days=n)


def test_natural_drift_of_a_little_used_feature_is_no_breach():
    a = assess(day(0), report(excess={"temp": 0.2, "dep_hour": 0.0}), CONFIG, None, POLICY)
    assert a.feature_drift == pytest.approx(0.04) and a.breaches == []


def test_each_kind_of_evidence_breaches_alone():
    moved = assess(day(0), report(excess={"temp": 0.0, "dep_hour": 0.1}), CONFIG, None, POLICY)
    assert moved.breaches[0].startswith("feature drift 0.080 > 0.05 (most: dep_hour)")
    shifted = assess(day(0), report(prediction_excess=0.2), CONFIG, None, POLICY)
    assert shifted.breaches == ["prediction drift 0.200 beyond natural > 0.1"]


def labelled(log_loss=0.45, mean_probability=0.2, late_rate=0.2, rows=900) -> dict:
    """A day's live performance as monitoring measures it (the loss of a classifier: log loss)."""
    return {"rows": rows, "loss": log_loss, "mean_prediction": mean_probability, "label_mean": late_rate}


def week(version: int = 1, **performance) -> list[dict]:
    """Six earlier assessed days of `version`, each with these labelled flights."""
    return [assess(day(n), report(), CONFIG, labelled(**performance), POLICY, [], version).as_dict() for n in range(6)]


def test_performance_is_judged_on_the_models_last_seven_days():
    worse = assess(day(6), report(), CONFIG, labelled(log_loss=0.56), POLICY, week(log_loss=0.56), 1)
    assert worse.pooled_days == 7 and worse.loss_ratio == pytest.approx(0.56 / 0.45)
    assert worse.breaches == ["live loss 1.24x the reference's over 7 days > 1.2x"]
    miscalibrated = assess(day(6), report(), CONFIG, labelled(late_rate=0.3), POLICY, week(late_rate=0.3), 1)
    assert miscalibrated.breaches == ["bias (mean prediction - mean label) 0.1 over 7 days > 0.08"]


def test_one_stormy_day_in_a_normal_week_is_no_breach():
    storm = assess(day(6), report(), CONFIG, labelled(log_loss=0.9, late_rate=0.45), POLICY, week(), 1)
    assert storm.loss_ratio == pytest.approx((6 * 0.45 + 0.9) / 7 / 0.45) and storm.breaches == []


def test_a_models_first_days_and_another_versions_days_give_no_performance_evidence():
    young = assess(day(3), report(), CONFIG, labelled(log_loss=0.9), POLICY, week(log_loss=0.9)[:3], 1)
    assert young.pooled_days == 4 and young.loss_ratio is None and young.breaches == []
    successor = assess(day(6), report(), CONFIG, labelled(log_loss=0.9), POLICY, week(log_loss=0.9), 2)
    assert successor.pooled_days == 1 and successor.breaches == []


def test_too_few_flights_say_nothing():
    a = assess(day(0), report(rows=100, prediction_excess=0.9), CONFIG, None, POLICY)
    assert a.rows == 0 and a.breaches == []
    assert not decide(a, [], POLICY, last_request=None, in_flight=False).retrain


def breaching(n: int) -> Assessment:
    return Assessment(day(n).isoformat(), 1000, 0.1, 0.0, None, None, ["feature drift 0.100 > 0.05"])


def quiet(n: int) -> Assessment:
    return Assessment(day(n).isoformat(), 1000, 0.0, 0.0, None, None, [])


def test_a_retrain_needs_consecutive_breaching_days():
    assert not decide(breaching(1), [quiet(0).as_dict()], POLICY, last_request=None, in_flight=False).retrain
    decision = decide(breaching(2), [quiet(0).as_dict(), breaching(1).as_dict()], POLICY, last_request=None,
                      in_flight=False)  # fmt: skip
    assert decision.retrain and decision.window_end == day(2).isoformat()
    assert decision.reason.startswith("2 consecutive days: feature drift")


def test_days_without_enough_flights_do_not_break_a_run():
    thin = Assessment(day(1).isoformat(), 0, 0.0, 0.0, None, None, [])
    history = [breaching(0).as_dict(), thin.as_dict()]
    assert decide(breaching(2), history, POLICY, last_request=None, in_flight=False).retrain


def test_cooldown_and_in_flight_hold_a_second_request():
    history = [breaching(8).as_dict(), breaching(9).as_dict()]
    held = decide(breaching(10), history, POLICY, last_request=day(5), in_flight=False)
    assert not held.retrain and "cooldown since the retrain of 2013-04-06" in held.reason
    assert decide(breaching(12), history, POLICY, last_request=day(5), in_flight=False).retrain  # 7 days on
    pending = decide(breaching(20), history, POLICY, last_request=day(5), in_flight=True)
    assert not pending.retrain and "still in flight" in pending.reason
