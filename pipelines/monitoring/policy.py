"""When to retrain: on evidence that matters, persisting, not too often.

A day's evidence (`assess`) is what the drift report and the late labels say, measured against
what is normal for this model:
- feature drift: the sum over features of (KS statistic - the feature's natural day-to-day KS in
  the reference period, if positive) x the model's reliance on the feature (permutation importance);
- prediction drift: the KS statistic of the model's probabilities beyond their natural drift;
- with labels, pooled over the model's last `performance_days` assessed days, once it has served
  that many: the live loss against the reference's (log loss, or squared error for a regressor),
  and the bias (mean prediction against the mean label: a classifier's calibration gap). One day's
  late rate swings with the weather: judged day by day, these two alarm on every null pair of the
  backtest (bench/retrain_policy.py).
A day with fewer than `min_rows` scored rows says nothing. A retrain is requested (`decide`)
when the evidence breaches on `consecutive` assessed days in a row, no retrain was requested in
the last `cooldown_days` days, and none is still in flight (requested, no model registered since).
A use case's limits (its spec's `monitoring.retraining`) are calibrated on real data by
`pipelines/monitoring/backtest.py` (README, Drift monitoring): the false-alarm rate on null pairs
and the payoff of each retrain.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field

from pipelines.usecases.spec import Retraining


@dataclass(frozen=True)
class RetrainPolicy:
    min_rows: int
    max_feature_drift: float
    max_prediction_drift: float
    max_loss_ratio: float
    max_bias: float
    consecutive: int
    cooldown_days: int
    performance_days: int

    @classmethod
    def of(cls, retraining: Retraining) -> RetrainPolicy:
        """The policy a use-case spec's `monitoring.retraining` section describes."""
        return cls(
            min_rows=retraining.min_rows,
            max_feature_drift=retraining.max_feature_drift,
            max_prediction_drift=retraining.max_prediction_drift,
            max_loss_ratio=retraining.max_loss_ratio,
            max_bias=retraining.max_bias,
            consecutive=retraining.consecutive_days,
            cooldown_days=retraining.cooldown_days,
            performance_days=retraining.performance_days,
        )


@dataclass
class Assessment:
    day: str
    rows: int
    feature_drift: float
    prediction_drift: float
    loss_ratio: float | None
    bias: float | None
    breaches: list[str]
    drifted_features: list[str] = field(default_factory=list)
    version: int | None = None
    labels: dict | None = None  # the day's labelled rows: rows, loss_sum, prediction_sum, label_sum
    pooled_days: int = 0  # days in the pooled loss and bias

    @property
    def counts(self) -> bool:
        return self.rows > 0

    def as_dict(self) -> dict:
        return asdict(self)


def _labels(performance: dict | None) -> dict | None:
    if not performance or not performance.get("rows"):
        return None
    rows = performance["rows"]
    return {
        "rows": rows,
        "loss_sum": performance["loss"] * rows,
        "prediction_sum": performance["mean_prediction"] * rows,
        "label_sum": performance["label_mean"] * rows,
    }


def assess(
    day: dt.date,
    report: dict,
    config: dict,
    performance: dict | None,
    policy: RetrainPolicy,
    history: list[dict] = (),
    version: int | None = None,
) -> Assessment:
    """`history`: earlier assessments (as dicts), oldest first; the labelled rows of `version`'s
    last `performance_days - 1` assessed days among them are pooled with today's."""
    rows = report["rows"]["current"]
    numeric = report["numeric"]
    feature_drift = sum(f["excess"] * f["weight"] for f in numeric.values())
    drifted = sorted((n for n, f in numeric.items() if f["excess"] > 0 and f["weight"] > 0),
                     key=lambda n: -numeric[n]["excess"] * numeric[n]["weight"])  # fmt: skip
    prediction_drift = report["predictions"]["excess"]
    labels = _labels(performance)
    mine = [h for h in history if h.get("version") == version and h.get("labels")]
    pool = mine[-(policy.performance_days - 1) :] if policy.performance_days > 1 else []
    pooled = [h["labels"] for h in pool] + ([labels] if labels else [])
    labelled = sum(p["rows"] for p in pooled)
    ratio = gap = None
    if len(pooled) >= policy.performance_days and labelled >= policy.min_rows:  # a model's first days say little
        ratio = sum(p["loss_sum"] for p in pooled) / labelled / config["reference_loss"]
        gap = abs(sum(p["prediction_sum"] for p in pooled) - sum(p["label_sum"] for p in pooled)) / labelled
    evidence = dict(drifted_features=drifted, version=version, labels=labels, pooled_days=len(pooled))
    if rows < policy.min_rows:
        return Assessment(day.isoformat(), 0, feature_drift, prediction_drift, ratio, gap, [], **evidence)
    breaches = []
    if feature_drift > policy.max_feature_drift:
        top = ", ".join(drifted[:3])
        breaches.append(f"feature drift {feature_drift:.3f} > {policy.max_feature_drift:g} (most: {top})")
    if prediction_drift > policy.max_prediction_drift:
        breaches.append(f"prediction drift {prediction_drift:.3f} beyond natural > {policy.max_prediction_drift:g}")
    over = f"over {len(pooled)} day{'s' if len(pooled) > 1 else ''}"
    if ratio is not None and ratio > policy.max_loss_ratio:
        breaches.append(f"live loss {ratio:.2f}x the reference's {over} > {policy.max_loss_ratio:g}x")
    if gap is not None and gap > policy.max_bias:
        breaches.append(f"bias (mean prediction - mean label) {gap:.3g} {over} > {policy.max_bias:g}")
    return Assessment(day.isoformat(), rows, feature_drift, prediction_drift, ratio, gap, breaches, **evidence)


@dataclass
class Decision:
    retrain: bool
    reason: str
    window_end: str | None = None


def decide(
    today: Assessment, history: list[dict], policy: RetrainPolicy, *, last_request: dt.date | None, in_flight: bool
) -> Decision:
    """`history`: earlier assessments (as dicts), oldest first; `last_request`: the day of the latest
    retrain request; `in_flight`: a request is pending (no model registered since)."""
    assessed = [h for h in history if h["rows"] > 0] + ([today.as_dict()] if today.counts else [])
    if not today.counts:
        return Decision(False, f"{today.day}: too few scored flights to judge")
    run = 0
    for h in reversed(assessed):
        if not h["breaches"]:
            break
        run += 1
    if run < policy.consecutive:
        state = "; ".join(today.breaches) if today.breaches else "no breach"
        return Decision(False, f"{today.day}: {state} ({run}/{policy.consecutive} consecutive days)")
    day = dt.date.fromisoformat(today.day)
    if in_flight:
        return Decision(False, f"{today.day}: breaching, but the retrain requested {last_request} is still in flight")
    if last_request is not None and (day - last_request).days < policy.cooldown_days:
        return Decision(
            False, f"{today.day}: breaching, but in cooldown since the retrain of {last_request} "
            f"({policy.cooldown_days} days)"
        )  # fmt: skip
    return Decision(True, f"{run} consecutive days: " + "; ".join(today.breaches), today.day)
