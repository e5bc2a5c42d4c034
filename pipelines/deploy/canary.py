"""Canary release of a challenger: smoke test in shadow, then growing shares of live traffic, each
watched for an observation window; any breach rolls back to the champion, and passing every
step promotes the challenger. No person is needed either way; every move is audited.

What is compared, per step, from the prediction log (challenger against the champion over the
same window):
- error rate: the share of the variant's items it failed to score (the champion stood in);
- latency: p95 of the variant's scoring call, with an absolute slack for tiny batches;
- prediction distribution: the two-sample Kolmogorov-Smirnov statistic of the predictions
  (probabilities, or a regressor's values).
Assignment is by a stable hash of the item's id, so both variants see comparable traffic.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Protocol

import numpy as np

from pipelines.deploy.plan import DeploymentPlan, Variant, read_plan, write_plan
from pipelines.errors import DeployFailed, PlatformError
from pipelines.registry.registry import Registry
from pipelines.settings import Settings
from pipelines.usecases.spec import UseCase


class ModelService(Protocol):
    def reload(self) -> dict: ...

    def predict(self, items: list[dict]) -> dict: ...


@dataclass(frozen=True)
class CanaryPolicy:
    steps: tuple[float, ...] = (5, 25, 50, 100)
    observe_seconds: float = 3600
    max_wait_seconds: float = 4 * 3600
    min_predictions: int = 200
    max_error_rate_increase: float = 0.01
    max_latency_ratio: float = 2.0
    latency_slack_ms: float = 5.0
    max_distribution_shift: float = 0.2

    @classmethod
    def from_settings(cls, settings: Settings) -> CanaryPolicy:
        return cls(
            steps=tuple(settings.canary_steps),
            observe_seconds=settings.canary_observe_seconds,
            max_wait_seconds=max(settings.canary_max_wait_seconds, settings.canary_observe_seconds),
            min_predictions=settings.canary_min_predictions,
            max_error_rate_increase=settings.canary_max_error_rate_increase,
            max_latency_ratio=settings.canary_max_latency_ratio,
            latency_slack_ms=settings.canary_latency_slack_ms,
            max_distribution_shift=settings.canary_max_distribution_shift,
        )


@dataclass
class VariantStats:
    name: str
    predictions: int
    errors: int
    latency_p95_ms: float
    predictions_seen: np.ndarray = field(repr=False)  # what the variant answered (probabilities or values)

    @property
    def error_rate(self) -> float:
        return self.errors / self.predictions if self.predictions else 0.0

    def summary(self) -> dict:
        p = self.predictions_seen
        return {
            "predictions": self.predictions,
            "errors": self.errors,
            "error_rate": round(self.error_rate, 6),
            "latency_p95_ms": round(self.latency_p95_ms, 3),
            "mean_prediction": round(float(p.mean()), 6) if len(p) else None,
        }


def variant_stats(log, name: str, prediction: str = "probability") -> VariantStats:
    """A live variant's items in a window of the prediction log (by assignment, whoever answered);
    `prediction` is the log's answer column (the use case's: probability, or prediction)."""
    mine = log[log["assigned_variant"] == name] if len(log) else log
    if not len(mine):
        return VariantStats(name, 0, 0, float("nan"), np.array([]))
    failed = mine["error"].fillna("") != ""
    ok = mine[~failed]
    calls = ok.groupby("request_id")["score_ms"].first() if len(ok) else []  # one scoring call per request
    return VariantStats(
        name,
        len(mine),
        int(failed.sum()),
        float(np.percentile(calls, 95)) if len(calls) else float("nan"),
        ok[prediction].to_numpy(dtype=float),
    )


def judge(
    champion: VariantStats, challenger: VariantStats, policy: CanaryPolicy, expected_shift: float = 0.0
) -> list[str]:
    """The policy's breaches by the challenger (empty: healthy). Needs enough challenger predictions.

    `expected_shift` is the KS statistic between the two models' predictions that the gate saw on
    its holdout: a retrain for drift is meant to answer differently, and what the canary catches is
    a shift beyond that (by more than `max_distribution_shift`), not the one the gate accepted."""
    from scipy.stats import ks_2samp

    breaches = []
    increase = challenger.error_rate - champion.error_rate
    if increase > policy.max_error_rate_increase:
        breaches.append(
            f"error rate {challenger.error_rate:.2%} vs champion {champion.error_rate:.2%} "
            f"(+{increase:.2%} > allowed +{policy.max_error_rate_increase:.2%})"
        )
    limit = champion.latency_p95_ms * policy.max_latency_ratio + policy.latency_slack_ms
    if np.isfinite(challenger.latency_p95_ms) and challenger.latency_p95_ms > limit:
        breaches.append(
            f"scoring p95 {challenger.latency_p95_ms:.1f} ms vs champion {champion.latency_p95_ms:.1f} ms "
            f"(limit {policy.max_latency_ratio:g}x + {policy.latency_slack_ms:g} ms = {limit:.1f} ms)"
        )
    if len(challenger.predictions_seen) and len(champion.predictions_seen):
        shift = float(ks_2samp(challenger.predictions_seen, champion.predictions_seen).statistic)
        if shift > expected_shift + policy.max_distribution_shift:
            breaches.append(
                f"prediction distribution shifted: KS statistic {shift:.3f} > {expected_shift:.3f} on the gate's "
                f"holdout + {policy.max_distribution_shift:g} (mean prediction "
                f"{challenger.predictions_seen.mean():.4g} vs {champion.predictions_seen.mean():.4g})"
            )
    return breaches


@dataclass
class StepReport:
    weight: float
    seconds: float
    champion: dict
    challenger: dict
    breaches: list[str]


@dataclass
class CanaryOutcome:
    model: str
    champion: int
    challenger: int
    promoted: bool
    steps: list[StepReport]
    reasons: list[str]

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> CanaryOutcome:
        return cls(**{**data, "steps": [StepReport(**step) for step in data["steps"]]})

    def render(self) -> str:
        lines = [
            f"Canary of {self.model} v{self.challenger} against champion v{self.champion}: "
            + ("PROMOTED" if self.promoted else "ROLLED BACK")
        ]
        for s in self.steps:
            ch, cc = s.challenger, s.champion
            lines.append(
                f"  {s.weight:>5g}%  {s.seconds:5.0f} s  challenger {ch['predictions']} predictions, errors "
                f"{ch['error_rate']:.2%}, p95 {ch['latency_p95_ms']} ms | champion {cc['predictions']} predictions, "
                f"errors {cc['error_rate']:.2%}, p95 {cc['latency_p95_ms']} ms"
            )
            lines += [f"         breach: {b}" for b in s.breaches]
        lines += [f"  reason: {r}" for r in self.reasons]
        return "\n".join(lines)


class Canary:
    """One release: `smoke()` the challenger in shadow, then `walk()` the traffic steps."""

    def __init__(
        self,
        registry: Registry,
        usecase: UseCase,
        service: ModelService,
        read_log: Callable[[dt.datetime], object],
        policy: CanaryPolicy,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """`service`: the use case's endpoint of the model service (serving.client.UseCaseEndpoint)."""
        self.registry, self.model, self.service, self.read_log = registry, usecase.name, service, read_log
        self.prediction = usecase.prediction_column
        self.policy, self.sleep = policy, sleep

    def champion(self) -> int:
        pointer = self.registry.alias(self.model, "champion")
        if pointer is None:
            raise DeployFailed(f"{self.model} has no champion to release a challenger against")
        return pointer["version"]

    def apply(self, plan: DeploymentPlan) -> dict:
        """Store the plan and make the service load it; the service's answer must show exactly this plan."""
        _, raw = read_plan(self.registry, self.model)
        write_plan(self.registry, self.model, plan, expected=raw)
        status = self.service.reload()
        served = [(v["name"], v["version"], v["weight"]) for v in status.get("variants", [])]
        wanted = [(v.name, v.version, v.weight) for v in plan.variants]
        if not status.get("ready") or served != wanted:
            raise DeployFailed(f"the service did not take the plan {wanted}: it reports {status}")
        return status

    def serve_champion_only(self, version: int, reason: str) -> None:
        self.apply(DeploymentPlan([Variant("champion", version, 100.0)], reason=reason))

    def smoke(self, challenger: int, items: list[dict]) -> None:
        """The challenger scores real requests' items in shadow (consumers see only the champion); any error,
        non-finite or out-of-range answer puts the champion-only plan back and raises DeployFailed."""
        champion = self.champion()
        started = dt.datetime.now(dt.UTC)
        problems = []
        try:
            self.apply(
                DeploymentPlan(
                    [Variant("champion", champion, 100.0)], Variant("challenger", challenger), reason="smoke test"
                )
            )
            answer = self.service.predict(items)
            if len(answer["predictions"]) != len(items):
                problems.append(f"{len(answer['predictions'])} answers for {len(items)} items")
            log = self.read_log(started)
            shadow = log[log["request_id"] == answer["request_id"]] if len(log) else log
            shadow = shadow[shadow["variant"] == "shadow:challenger"] if len(shadow) else shadow
            if len(shadow) != len(items):
                problems.append(f"the challenger logged {len(shadow)} shadow answers for {len(items)} items")
            failures = sorted(set(shadow["error"].fillna(""))) if len(shadow) else []
            problems += [f"the challenger failed: {f}" for f in failures if f]
        except PlatformError as exc:
            problems.append(str(exc))
        if problems:
            self._back_to_champion(champion, challenger, "smoke test failed", problems)
            raise DeployFailed(f"{self.model} v{challenger} failed its smoke test: " + "; ".join(problems))
        self.registry.ledger.append("deployment.smoke_passed", f"{self.model}/v{challenger}", {"items": len(items)})

    def walk(self, challenger: int) -> CanaryOutcome:
        """Give the challenger each step's share of traffic for an observation window; roll back on the
        first breach (or when too little traffic arrives to judge), promote after the last step."""
        champion = self.champion()
        outcome = CanaryOutcome(self.model, champion, challenger, False, [], [])
        expected = self.expected_shift(challenger, champion)
        for weight in (w for w in self.policy.steps if w < 100):
            self.apply(
                DeploymentPlan(
                    [Variant("champion", champion, 100.0 - weight), Variant("challenger", challenger, weight)],
                    reason=f"canary {weight:g}%",
                )
            )
            step = self._observe(weight, expected)
            outcome.steps.append(step)
            self.registry.ledger.append("deployment.canary_step", f"{self.model}/v{challenger}", asdict(step))
            if step.breaches:
                outcome.reasons = step.breaches
                self._back_to_champion(champion, challenger, f"canary {weight:g}% breached", step.breaches)
                return outcome
        reason = f"canary passed {', '.join(f'{s.weight:g}%' for s in outcome.steps)}"
        self.registry.promote(self.model, challenger, "champion", reason=reason)
        self.serve_champion_only(challenger, reason)
        self.registry.ledger.append(
            "deployment.promoted", f"{self.model}/v{challenger}", {"previous_champion": champion, "reason": reason}
        )
        outcome.promoted, outcome.reasons = True, [reason]
        return outcome

    def expected_shift(self, challenger: int, champion: int) -> float:
        """The prediction shift against `champion` that the gate measured for `challenger` (0 if it was
        gated against another champion, or not at all)."""
        shift = self.registry.manifest(self.model, challenger).get("metrics", {}).get("prediction_shift")
        return float(shift["ks"]) if shift and shift.get("champion") == champion else 0.0

    def _observe(self, weight: float, expected_shift: float) -> StepReport:
        started = dt.datetime.now(dt.UTC)
        clock = time.monotonic()
        self.sleep(self.policy.observe_seconds)
        while True:
            log = self.read_log(started)
            champion = variant_stats(log, "champion", self.prediction)
            challenger = variant_stats(log, "challenger", self.prediction)
            waited = time.monotonic() - clock
            if challenger.predictions >= self.policy.min_predictions:
                breaches = judge(champion, challenger, self.policy, expected_shift)
                break
            if waited >= self.policy.max_wait_seconds:
                breaches = [
                    f"only {challenger.predictions} challenger predictions in {waited:.0f} s "
                    f"(at least {self.policy.min_predictions} needed to judge)"
                ]
                break
            self.sleep(min(self.policy.observe_seconds, self.policy.max_wait_seconds - waited))
        return StepReport(weight, waited, champion.summary(), challenger.summary(), breaches)

    def _back_to_champion(self, champion: int, challenger: int, why: str, reasons: list[str]) -> None:
        self.serve_champion_only(champion, f"rollback of v{challenger}: {why}")
        self.registry.ledger.append(
            "deployment.rollback", f"{self.model}/v{challenger}", {"champion": champion, "why": why, "reasons": reasons}
        )
