"""Holdout metrics, slices and behavioural checks of a scored model."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pandas as pd

from pipelines.usecases.spec import Behaviour

CALIBRATION_BINS = 10


def log_losses(y: np.ndarray, p: np.ndarray, eps: float = 1e-7) -> np.ndarray:
    """Each row's log loss, probabilities clipped to [eps, 1 - eps]: sum or average them as needed."""
    p = np.clip(np.asarray(p, dtype=float), eps, 1 - eps)
    return -(y * np.log(p) + (1 - y) * np.log(1 - p))


def row_losses(task: str, y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Each row's loss under the task's training objective: log loss, or squared error."""
    if task == "binary_classification":
        return log_losses(y, p)
    return (np.asarray(p, dtype=float) - np.asarray(y, dtype=float)) ** 2


def scores(task: str, y: np.ndarray, p: np.ndarray) -> dict:
    """The holdout metrics of a `task` model (the spec's METRICS): classification or regression scores."""
    return classification_scores(y, p) if task == "binary_classification" else regression_scores(y, p)


def regression_scores(y: np.ndarray, p: np.ndarray) -> dict:
    """RMSE, MAE, bias (mean prediction - mean label) and R²; NaN where undefined."""
    y, p = np.asarray(y, dtype=float), np.asarray(p, dtype=float)
    out = {"rows": int(len(y)), "label_mean": float(y.mean()) if len(y) else math.nan}
    if not len(y) or not np.isfinite(p).all():
        return {**out, "rmse": math.nan, "mae": math.nan, "bias": math.nan, "r2": math.nan}
    error = p - y
    spread = float(((y - y.mean()) ** 2).sum())
    return {
        **out,
        "rmse": float(np.sqrt(np.mean(error**2))),
        "mae": float(np.mean(np.abs(error))),
        "bias": float(error.mean()),
        "r2": 1 - float((error**2).sum()) / spread if spread > 0 else math.nan,
    }


def classification_scores(y: np.ndarray, p: np.ndarray) -> dict:
    """ROC AUC, PR AUC, log loss, its skill, Brier, expected calibration error; NaN where undefined (one class).

    The log-loss skill is the classifier's R²: 1 - log loss / the log loss of always predicting the
    holdout's own base rate. Knowing only the base rate scores 0 whatever the base rate, while its log
    loss goes from 0.37 (an eighth of the flights late) to 0.69 (nearly half): a bound on the skill
    holds a model to the same bar in both weeks, a bound on the log loss does not.
    """
    from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

    y, p = np.asarray(y, dtype=int), np.asarray(p, dtype=float)
    out = {"rows": int(len(y)), "positives": int(y.sum()), "base_rate": float(y.mean()) if len(y) else math.nan}
    if not np.isfinite(p).all():
        return {
            **out,
            "roc_auc": math.nan,
            "pr_auc": math.nan,
            "log_loss": math.nan,
            "log_loss_skill": math.nan,
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
    base_rate_loss = float(log_losses(y, np.full(len(y), out["base_rate"])).mean()) if two_classes else math.nan
    out["log_loss_skill"] = 1 - out["log_loss"] / base_rate_loss if two_classes else math.nan
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


def slice_scores(
    task: str, frame: pd.DataFrame, label: str, p: np.ndarray, columns: list[str]
) -> dict[str, dict[str, dict]]:
    """Metrics per value of each slice column (the spec's `gate.slices`: carrier, origin, month for flights)."""
    out: dict[str, dict[str, dict]] = {}
    for column in columns:
        out[column] = {}
        for value, index in frame.groupby(column, sort=True).indices.items():
            result = scores(task, frame[label].to_numpy()[index], p[index])
            result.pop("calibration", None)
            out[column][str(value)] = result
    return out


def behavioural_checks(
    predict: Callable[[np.ndarray], np.ndarray], frame: pd.DataFrame, features: list[str], behaviour: Behaviour
) -> list:
    """Checks a model must pass whatever its metrics (the spec's `gate.behaviour`): invariance to
    identifiers, minimum functionality on clear cases, direction of the features that must raise it."""
    x = frame[features].to_numpy(dtype=np.float32)
    base = predict(x)
    checks = []

    # Invariance: an identifier (an entity key, a row id) is never an input, and giving every row another
    # row's key does not move a prediction.
    for key in behaviour.invariant_to:
        moved = 0.0
        if key in frame.columns and key in features:
            shuffled = frame.assign(**{key: np.roll(frame[key].to_numpy(), 1)})
            moved = float(np.max(np.abs(predict(shuffled[features].to_numpy(dtype=np.float32)) - base)))
        checks.append(
            {
                "name": f"invariance_to_{key}",
                "passed": key not in features and moved == 0.0,
                "detail": {"is_an_input": key in features, "largest_change": moved},
            }
        )

    # Minimum functionality: with the `high` values, every row must score above itself with the `low` ones.
    if behaviour.clear_cases is not None:
        cases = behaviour.clear_cases
        unknown = sorted((set(cases.high) | set(cases.low)) - set(features))

        def with_values(values: dict[str, float]) -> np.ndarray:
            case = frame[features].assign(**values)
            return predict(case.to_numpy(dtype=np.float32))

        share = 0.0 if unknown else float((with_values(cases.high) > with_values(cases.low)).mean())
        checks.append(
            {
                "name": "minimum_functionality_clear_cases",
                "passed": not unknown and share >= cases.min_share,
                "detail": {"share_ranked_correctly": share, "required": cases.min_share, "unknown_features": unknown},
            }
        )

    # Direction: raising one of these features by its standard deviation must not lower predictions on average.
    for feature in behaviour.increasing:
        if feature not in features:
            checks.append({"name": f"direction_{feature}", "passed": False, "detail": {"unknown_feature": feature}})
            continue
        column = frame[feature].astype(float)
        raised = frame[features].assign(**{feature: column.fillna(column.median()) + column.std()})
        delta = predict(raised.to_numpy(dtype=np.float32)) - base
        checks.append(
            {
                "name": f"direction_{feature}",
                "passed": float(np.mean(delta)) >= 0,
                "detail": {"mean_change": float(np.mean(delta)), "share_decreased": float((delta < 0).mean())},
            }
        )
    return checks


def naive_baseline(frame: pd.DataFrame, label: str, columns: list[str]) -> np.ndarray:
    """What a person would quote (the spec's `gate.baseline`): the first of `columns` a row has (for flights
    the route's 28-day late rate, else the carrier's), else the training mean of the label."""
    base = frame.loc[frame["split"] == "train", label].mean()
    quoted = frame[columns[0]]
    for column in columns[1:]:
        quoted = quoted.fillna(frame[column])
    return quoted.fillna(base).to_numpy(dtype=float)
