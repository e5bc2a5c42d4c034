"""When to retrain: on evidence that matters, persisting, not too often.

A day's evidence (`assess`) is what the drift report and the late labels say, measured against
what is normal for this model:
- feature drift: the sum over features of (KS statistic - the feature's natural day-to-day KS in
  the reference period, if positive) x the model's reliance on the feature (permutation importance);
- prediction drift: the KS statistic of the model's probabilities beyond their natural drift;
- with labels: live log loss against the reference log loss, and the calibration gap (mean
  predicted probability against the observed late rate).
A day with fewer than `min_rows` scored flights says nothing. A retrain is requested (`decide`)
when the evidence breaches on `consecutive` assessed days in a row, no retrain was requested in
the last `cooldown_days` days, and none is still in flight (requested, no model registered since).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field

from pipelines.settings import Settings


@dataclass(frozen=True)
class RetrainPolicy:
    min_rows: int = 300
    max_feature_drift: float = 0.05
    max_prediction_drift: float = 0.10
    max_log_loss_ratio: float = 1.10
    max_calibration_gap: float = 0.05
    consecutive: int = 2
    cooldown_days: int = 7

    @classmethod
    def from_settings(cls, settings: Settings) -> RetrainPolicy:
        return cls(
            min_rows=settings.retrain_min_rows,
            max_feature_drift=settings.retrain_max_feature_drift,
            max_prediction_drift=settings.retrain_max_prediction_drift,
            max_log_loss_ratio=settings.retrain_max_log_loss_ratio,
            max_calibration_gap=settings.retrain_max_calibration_gap,
            consecutive=settings.retrain_consecutive_days,
            cooldown_days=settings.retrain_cooldown_days,
        )


@dataclass
class Assessment:
    day: str
    rows: int
    feature_drift: float
    prediction_drift: float
    log_loss_ratio: float | None
    calibration_gap: float | None
    breaches: list[str]
    drifted_features: list[str] = field(default_factory=list)

    @property
    def counts(self) -> bool:
        return self.rows > 0

    def as_dict(self) -> dict:
        return asdict(self)


def assess(day: dt.date, report: dict, config: dict, performance: dict | None, policy: RetrainPolicy) -> Assessment:
    rows = report["rows"]["current"]
    numeric = report["numeric"]
    feature_drift = sum(f["excess"] * f["weight"] for f in numeric.values())
    drifted = sorted((n for n, f in numeric.items() if f["excess"] > 0 and f["weight"] > 0),
                     key=lambda n: -numeric[n]["excess"] * numeric[n]["weight"])  # fmt: skip
    prediction_drift = report["predictions"]["excess"]
    ratio = gap = None
    if performance and performance.get("rows", 0) >= policy.min_rows:
        ratio = performance["log_loss"] / config["reference_log_loss"]
        gap = abs(performance["mean_probability"] - performance["late_rate"])
    breaches = []
    if rows < policy.min_rows:
        return Assessment(day.isoformat(), 0, feature_drift, prediction_drift, ratio, gap, [], drifted)
    if feature_drift > policy.max_feature_drift:
        top = ", ".join(drifted[:3])
        breaches.append(f"feature drift {feature_drift:.3f} > {policy.max_feature_drift:g} (most: {top})")
    if prediction_drift > policy.max_prediction_drift:
        breaches.append(f"prediction drift {prediction_drift:.3f} beyond natural > {policy.max_prediction_drift:g}")
    if ratio is not None and ratio > policy.max_log_loss_ratio:
        breaches.append(f"log loss {ratio:.2f}x the reference's > {policy.max_log_loss_ratio:g}x")
    if gap is not None and gap > policy.max_calibration_gap:
        breaches.append(f"calibration gap {gap:.3f} > {policy.max_calibration_gap:g}")
    return Assessment(day.isoformat(), rows, feature_drift, prediction_drift, ratio, gap, breaches, drifted)


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
