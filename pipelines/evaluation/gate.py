"""The evaluation gate: nothing reaches serving unless it beat the champion on the evidence.

Every check is recorded with its value, its limit and the reason; NaN never passes; a tie
with the champion passes (no regression is not the same as improvement).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from pipelines.settings import Settings
from pipelines.usecases.spec import HIGHER_IS_BETTER, UseCase


@dataclass(frozen=True)
class GatePolicy:
    limits: dict[str, tuple[float | None, float | None]]  # metric -> (min, max) on the holdout
    primary: str  # the metric slices are compared on (ROC AUC, RMSE)
    tolerance_abs: float
    tolerance_rel: float
    slice_margin: float
    slice_min_rows: int
    parity_tolerance: float
    latency_budget_ms: float

    @classmethod
    def of(cls, usecase: UseCase, settings: Settings) -> GatePolicy:
        """A use case's gate (its spec) with the platform's serving constraints (its settings)."""
        gate = usecase.gate
        return cls(
            {metric: (limit.min, limit.max) for metric, limit in gate.limits.items()},
            usecase.primary_metric,
            gate.tolerance_abs,
            gate.tolerance_rel,
            gate.slice_margin,
            gate.slice_min_rows,
            settings.onnx_parity_tolerance,
            settings.onnx_latency_budget_ms,
        )


@dataclass
class GateReport:
    passed: bool
    checks: list[dict] = field(default_factory=list)
    champion_version: int | None = None

    @property
    def reasons(self) -> list[str]:
        return [c["reason"] for c in self.checks if not c["passed"]]

    def as_dict(self) -> dict:
        return {**asdict(self), "reasons": self.reasons}


def _finite(*values) -> bool:
    return all(isinstance(v, int | float) and math.isfinite(v) for v in values)


def _check(checks: list, name: str, value, limit, ok: bool, reason: str) -> None:
    passed = bool(ok) and _finite(value, limit)
    if not _finite(value, limit):
        reason = f"{name} is {value} (limit {limit}): not a number never passes"
    checks.append({"name": name, "value": value, "limit": limit, "passed": passed, "reason": "" if passed else reason})


def _label(metric: str) -> str:
    return {"roc_auc": "ROC AUC", "pr_auc": "PR AUC", "log_loss": "log loss", "log_loss_skill": "log-loss skill",
            "rmse": "RMSE", "mae": "MAE", "r2": "R²", "ece": "ECE"}.get(metric, metric.replace("_", " "))  # fmt: skip


def decide(candidate: dict, policy: GatePolicy, champion: dict | None = None, champion_version: int | None = None):
    """Gate a candidate's evaluation (and the champion's on the same holdout, when there is one)."""
    checks: list[dict] = []
    holdout = candidate["holdout"]
    for metric, (low, high) in policy.limits.items():
        value = holdout.get(metric, math.nan)
        if low is not None:
            _check(checks, metric, value, low, _finite(value) and value >= low,
                   f"{_label(metric)} {value:.4f} is below the minimum {low}")  # fmt: skip
        if high is not None:
            _check(checks, metric if low is None else f"{metric}_max", value, high, _finite(value) and value <= high,
                   f"{_label(metric)} {value:.4f} is above the maximum {high}")  # fmt: skip
    onnx = candidate["onnx"]
    _check(
        checks,
        "onnx_parity",
        onnx["parity"],
        policy.parity_tolerance,
        _finite(onnx["parity"]) and onnx["parity"] <= policy.parity_tolerance,
        f"ONNX and native predictions differ by up to {onnx['parity']:.2e} (> {policy.parity_tolerance:.0e})",
    )
    p99 = onnx["latency_ms"]["p99"]
    _check(
        checks,
        "onnx_latency_p99_ms",
        p99,
        policy.latency_budget_ms,
        _finite(p99) and p99 <= policy.latency_budget_ms,
        f"ONNX Runtime p99 for one row is {p99:.2f} ms (budget {policy.latency_budget_ms} ms)",
    )
    for check in candidate["behaviour"]:
        checks.append(
            {
                "name": f"behaviour:{check['name']}",
                "value": check["detail"],
                "limit": None,
                "passed": bool(check["passed"]),
                "reason": "" if check["passed"] else f"behavioural check {check['name']} failed: {check['detail']}",
            }
        )
    if champion is not None:
        theirs = champion["holdout"]
        for metric in policy.limits:
            if metric == "bias":
                continue  # a signed error: bounded above, never ranked against the champion
            mine, other = holdout.get(metric, math.nan), theirs.get(metric, math.nan)
            slack = max(policy.tolerance_abs, policy.tolerance_rel * abs(other)) if _finite(other) else math.nan
            higher = metric in HIGHER_IS_BETTER
            bound = other - slack if higher else other + slack
            _check(
                checks,
                f"{metric}_vs_champion",
                mine,
                bound,
                _finite(mine, bound) and (mine >= bound if higher else mine <= bound),
                f"{_label(metric)} {mine:.4f} regresses against champion v{champion_version} ({other:.4f}, "
                f"tolerance {slack:.4f})",
            )
        primary, higher = policy.primary, policy.primary in HIGHER_IS_BETTER
        for column, values in candidate["slices"].items():
            for value, mine in values.items():
                other = champion["slices"].get(column, {}).get(value)
                if other is None or min(mine["rows"], other["rows"]) < policy.slice_min_rows:
                    continue
                if not _finite(other[primary]):
                    continue  # one class in this slice: nothing to compare
                bound = other[primary] - policy.slice_margin if higher else other[primary] + policy.slice_margin
                _check(
                    checks,
                    f"slice:{column}={value}",
                    mine[primary],
                    bound,
                    _finite(mine[primary]) and (mine[primary] >= bound if higher else mine[primary] <= bound),
                    f"slice {column}={value}: {_label(primary)} {mine[primary]:.4f} is more than "
                    f"{policy.slice_margin} {'below' if higher else 'above'} the champion's {other[primary]:.4f}",
                )
    return GateReport(all(c["passed"] for c in checks), checks, champion_version)
