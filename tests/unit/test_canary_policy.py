"""The canary's judgement on prediction-log windows: each breach alone, the slack that keeps tiny
batches from tripping the latency check, and which version a deploy run releases."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import ks_2samp

from pipelines.deploy.canary import CanaryPolicy, judge, variant_stats
from pipelines.errors import SettingsError
from pipelines.orchestration.deploy import release_target
from pipelines.settings import load_settings

POLICY = CanaryPolicy(max_error_rate_increase=0.01, max_latency_ratio=2.0, latency_slack_ms=5.0,
                      max_distribution_shift=0.2)  # fmt: skip
RNG = np.random.default_rng(7)


def window(name: str, n: int, *, errors: int = 0, score_ms: float = 1.0, p=None) -> pd.DataFrame:
    """`n` logged flights assigned to `name` in requests of 10, the first `errors` failed."""
    p = RNG.beta(2, 6, n) if p is None else np.asarray(p, dtype=float)
    failed = np.arange(n) < errors
    return pd.DataFrame({
        "request_id": [f"{name}-{i // 10}" for i in range(n)],
        "assigned_variant": name,
        "variant": np.where(failed, "champion", name),
        "error": np.where(failed, "ModelUnavailable: NaN", ""),
        "probability": p,
        "score_ms": score_ms,
    })  # fmt: skip


def stats(frame):
    return variant_stats(frame, "champion"), variant_stats(frame, "challenger")


def test_a_healthy_challenger_has_no_breach():
    assert judge(*stats(pd.concat([window("champion", 2000), window("challenger", 300)])), POLICY) == []


def test_errors_count_against_the_variant_assigned_not_the_one_that_answered():
    champion, challenger = stats(pd.concat([window("champion", 2000), window("challenger", 300, errors=30)]))
    assert (challenger.predictions, challenger.errors, champion.errors) == (300, 30, 0)
    assert len(challenger.predictions_seen) == 270  # only its own answers describe its distribution
    [breach] = judge(champion, challenger, POLICY)
    assert breach.startswith("error rate 10.00% vs champion 0.00%")


def test_an_error_rate_within_the_allowance_passes():
    frame = pd.concat([window("champion", 2000, errors=20), window("challenger", 1000, errors=15)])
    assert judge(*stats(frame), POLICY) == []  # +0.5 points <= +1 point


def test_latency_breaches_only_beyond_ratio_plus_slack():
    slow = pd.concat([window("champion", 2000, score_ms=2.0), window("challenger", 300, score_ms=9.5)])
    assert "scoring p95 9.5 ms vs champion 2.0 ms (limit 2x + 5 ms = 9.0 ms)" in judge(*stats(slow), POLICY)[0]
    tolerable = pd.concat([window("champion", 2000, score_ms=2.0), window("challenger", 300, score_ms=8.9)])
    assert judge(*stats(tolerable), POLICY) == []  # 2 x 2.0 + 5 = 9.0 ms


def test_a_shifted_distribution_breaches():
    frame = pd.concat([window("champion", 2000), window("challenger", 300, p=np.full(300, 0.99))])
    [breach] = judge(*stats(frame), POLICY)
    assert "KS statistic 1.000 > 0.000 on the gate's holdout + 0.2" in breach and "mean prediction 0.99 vs" in breach


def test_the_shift_the_gate_accepted_is_expected_live_and_only_more_breaches():
    """A retrain for drift answers higher than the stale champion; the gate measured by how much (KS on
    its holdout). Live, that much is expected; that much plus the policy's margin is not."""
    recalibrated = RNG.beta(3, 5, 300)  # mean 0.375 against the champion's 0.25
    frame = pd.concat([window("champion", 2000), window("challenger", 300, p=recalibrated)])
    champion, challenger = stats(frame)
    live = ks_2samp(challenger.predictions_seen, champion.predictions_seen).statistic
    assert live > POLICY.max_distribution_shift and judge(champion, challenger, POLICY)  # a breach, unexpected
    assert judge(champion, challenger, POLICY, expected_shift=live - 0.1) == []  # the gate saw nearly as much
    [breach] = judge(champion, challenger, POLICY, expected_shift=live - POLICY.max_distribution_shift - 0.01)
    assert "on the gate's holdout" in breach


def test_no_traffic_means_no_statistics():
    champion, challenger = stats(window("champion", 50))
    assert challenger.predictions == 0 and challenger.summary()["mean_prediction"] is None


@pytest.mark.parametrize("steps", ["[5, 25, 50]", "[25, 5, 100]", "[0, 100]", "[]"])
def test_canary_steps_must_rise_to_100(monkeypatch, steps):
    monkeypatch.setenv("PLATFORM_CANARY_STEPS", steps)
    with pytest.raises(SettingsError, match="PLATFORM_CANARY_STEPS"):
        load_settings()


@pytest.mark.parametrize(
    ("conf", "events", "expected"),
    [({"version": 4}, [{"challenger": 3}], ("challenger", 4)),
     ({"version": None}, [{"model": "flight_delay", "champion": 1}], ("champion", 1)),
     (None, [{"challenger": 2}, {"challenger": 5}], ("challenger", 5)),
     ({"version": None}, [{"model": "flight_delay"}], None)],
)  # fmt: skip
def test_the_release_target(conf, events, expected):
    assert release_target(conf, events) == expected
