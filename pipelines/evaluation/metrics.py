"""Holdout metrics, slices and behavioural checks of a scored model."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pandas as pd

from pipelines.training.dataset import LABEL

CALIBRATION_BINS = 10


def flight_log_losses(y: np.ndarray, p: np.ndarray, eps: float = 1e-7) -> np.ndarray:
    """Each flight's log loss, probabilities clipped to [eps, 1 - eps]: sum or average them as needed."""
    p = np.clip(np.asarray(p, dtype=float), eps, 1 - eps)
    return -(y * np.log(p) + (1 - y) * np.log(1 - p))


def scores(y: np.ndarray, p: np.ndarray) -> dict:
    """ROC AUC, PR AUC, log loss, Brier, expected calibration error; NaN where undefined (one class)."""
    from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

    y, p = np.asarray(y, dtype=int), np.asarray(p, dtype=float)
    out = {"rows": int(len(y)), "positives": int(y.sum()), "base_rate": float(y.mean()) if len(y) else math.nan}
    if not np.isfinite(p).all():
        return {
            **out,
            "roc_auc": math.nan,
            "pr_auc": math.nan,
            "log_loss": math.nan,
            "brier": math.nan,
            "ece": math.nan,
            "calibration": [],
        }
    two_classes = 0 < y.sum() < len(y)
    clipped = np.clip(p, 1e-7, 1 - 1e-7)
    out.update(
        roc_auc=float(roc_auc_score(y, p)) if two_classes else math.nan,
        pr_auc=float(average_precision_score(y, p)) if two_classes else math.nan,
        log_loss=float(log_loss(y, clipped, labels=[0, 1])) if len(y) else math.nan,
        brier=float(brier_score_loss(y, p)) if len(y) else math.nan,
    )
    bins = np.minimum((p * CALIBRATION_BINS).astype(int), CALIBRATION_BINS - 1)
    calibration, ece = [], 0.0
    for b in range(CALIBRATION_BINS):
        mask = bins == b
        if mask.any():
            predicted, observed = float(p[mask].mean()), float(y[mask].mean())
            calibration.append({"bin": b, "rows": int(mask.sum()), "predicted": predicted, "observed": observed})
            ece += mask.mean() * abs(predicted - observed)
    out.update(ece=float(ece) if len(y) else math.nan, calibration=calibration)
    return out


def slice_scores(frame: pd.DataFrame, p: np.ndarray, columns: list[str]) -> dict[str, dict[str, dict]]:
    """Metrics per value of each slice column (the spec's `gate.slices`: carrier, origin, month for flights)."""
    out: dict[str, dict[str, dict]] = {}
    for column in columns:
        out[column] = {}
        for value, index in frame.groupby(column, sort=True).indices.items():
            result = scores(frame[LABEL].to_numpy()[index], p[index])
            result.pop("calibration")
            out[column][str(value)] = result
    return out


def behavioural_checks(predict: Callable[[np.ndarray], np.ndarray], frame: pd.DataFrame, features: list[str]) -> list:
    """Checks a model must pass whatever its metrics: invariance, minimum functionality, direction."""
    x = frame[features].to_numpy(dtype=np.float32)
    base = predict(x)
    checks = []

    # Invariance: the hashed tail number is an entity key, never an input. Giving every flight another
    # aircraft's key must not move a prediction (the inputs do not contain it).
    identifiers = [c for c in ("tailnum_hash", "flight_id", "tailnum") if c in features]
    shuffled = frame.assign(tailnum_hash=np.roll(frame["tailnum_hash"].to_numpy(), 1))
    moved = float(np.max(np.abs(predict(shuffled[features].to_numpy(dtype=np.float32)) - base)))
    checks.append(
        {
            "name": "invariance_to_tail_number_hash",
            "passed": not identifiers and moved == 0.0,
            "detail": {"identifier_inputs": identifiers, "largest_change": moved},
        }
    )

    # Minimum functionality: flights of routes and carriers that were late most of the past week, in the
    # evening, must score above flights of routes and carriers that were almost never late, in the morning.
    def clear_cases(route_rate: float, carrier_rate: float, hour: float) -> np.ndarray:
        case = frame[features].copy()
        case["route_late_rate_7d"], case["carrier_late_rate_7d"] = route_rate, carrier_rate
        case["route_late_rate_28d"], case["carrier_late_rate_28d"] = route_rate, carrier_rate
        case["dep_hour"] = hour
        return predict(case.to_numpy(dtype=np.float32))

    bad, good = clear_cases(0.8, 0.6, 19.0), clear_cases(0.02, 0.05, 7.0)
    share = float((bad > good).mean())
    checks.append(
        {
            "name": "minimum_functionality_clear_cases",
            "passed": share >= 0.9,
            "detail": {"share_ranked_correctly": share, "required": 0.9},
        }
    )

    # Direction: a route that was late more often in the past week must not make lateness less likely (on average).
    raised = frame[features].copy()
    raised["route_late_rate_7d"] = np.clip(raised["route_late_rate_7d"].fillna(0) + 0.3, 0, 1)
    delta = predict(raised.to_numpy(dtype=np.float32)) - base
    checks.append(
        {
            "name": "direction_route_late_rate",
            "passed": float(np.mean(delta)) >= 0,
            "detail": {"mean_change": float(np.mean(delta)), "share_decreased": float((delta < 0).mean())},
        }
    )
    return checks


def naive_baseline(frame: pd.DataFrame) -> np.ndarray:
    """What a person would quote: the route's 28-day late rate, else the carrier's, else the base rate."""
    base = frame.loc[frame["split"] == "train", LABEL].mean()
    return frame["route_late_rate_28d"].fillna(frame["carrier_late_rate_28d"]).fillna(base).to_numpy(dtype=float)
