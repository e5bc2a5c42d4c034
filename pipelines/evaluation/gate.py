"""The evaluation gate: nothing reaches serving unless it beat the champion on the evidence.

Every check is recorded with its value, its limit and the reason; NaN never passes; a tie
with the champion passes (no regression is not the same as improvement).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from pipelines.settings import Settings
from pipelines.usecases.spec import Gate


@dataclass(frozen=True)
class GatePolicy:
    min_roc_auc: float
    max_log_loss: float
    tolerance_abs: float
    tolerance_rel: float
    slice_margin: float
    slice_min_rows: int
    parity_tolerance: float
    latency_budget_ms: float

    @classmethod
    def of(cls, gate: Gate, settings: Settings) -> GatePolicy:
        """A use case's gate (its spec) with the platform's serving constraints (its settings)."""
        return cls(
            gate.min_roc_auc,
            gate.max_log_loss,
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


def decide(candidate: dict, policy: GatePolicy, champion: dict | None = None, champion_version: int | None = None):
    """Gate a candidate's evaluation (and the champion's on the same holdout, when there is one)."""
    checks: list[dict] = []
    holdout = candidate["holdout"]
    auc, loss = holdout["roc_auc"], holdout["log_loss"]
    _check(
        checks,
        "roc_auc",
        auc,
        policy.min_roc_auc,
        _finite(auc) and auc >= policy.min_roc_auc,
        f"ROC AUC {auc:.4f} is below the minimum {policy.min_roc_auc}",
    )
    _check(
        checks,
        "log_loss",
        loss,
        policy.max_log_loss,
        _finite(loss) and loss <= policy.max_log_loss,
        f"log loss {loss:.4f} is above the maximum {policy.max_log_loss}",
    )
    onnx = candidate["onnx"]
    _check(
        checks,
        "onnx_parity",
        onnx["parity"],
        policy.parity_tolerance,
        _finite(onnx["parity"]) and onnx["parity"] <= policy.parity_tolerance,
        f"ONNX and native probabilities differ by up to {onnx['parity']:.2e} (> {policy.parity_tolerance:.0e})",
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
        slack = max(policy.tolerance_abs, policy.tolerance_rel * abs(theirs["roc_auc"]))
        floor = theirs["roc_auc"] - slack
        _check(
            checks,
            "roc_auc_vs_champion",
            auc,
            floor,
            _finite(auc, floor) and auc >= floor,
            f"ROC AUC {auc:.4f} regresses against champion v{champion_version} ({theirs['roc_auc']:.4f}, "
            f"tolerance {slack:.4f})",
        )
        ceiling = theirs["log_loss"] + max(policy.tolerance_abs, policy.tolerance_rel * abs(theirs["log_loss"]))
        _check(
            checks,
            "log_loss_vs_champion",
            loss,
            ceiling,
            _finite(loss, ceiling) and loss <= ceiling,
            f"log loss {loss:.4f} regresses against champion v{champion_version} ({theirs['log_loss']:.4f})",
        )
        for column, values in candidate["slices"].items():
            for value, mine in values.items():
                other = champion["slices"].get(column, {}).get(value)
                if other is None or min(mine["rows"], other["rows"]) < policy.slice_min_rows:
                    continue
                if not _finite(other["roc_auc"]):
                    continue  # one class in this slice: nothing to compare
                floor = other["roc_auc"] - policy.slice_margin
                _check(
                    checks,
                    f"slice:{column}={value}",
                    mine["roc_auc"],
                    floor,
                    _finite(mine["roc_auc"]) and mine["roc_auc"] >= floor,
                    f"slice {column}={value}: ROC AUC {mine['roc_auc']:.4f} is more than {policy.slice_margin} "
                    f"below the champion's {other['roc_auc']:.4f}",
                )
    return GateReport(all(c["passed"] for c in checks), checks, champion_version)
