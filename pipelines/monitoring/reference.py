"""What drift monitoring compares live traffic with, built at training time and versioned with the
model: a reference sample (features, categorical context, the model's own predictions, labels) and
the detector configuration, including how much each feature drifts *naturally* between days of
the reference period and how much the model relies on it.

Why: on this data weather features drift within any fortnight (KS 0.41 for temperature between
two halves of January) while schedule features do not; a p-value per feature would alarm every
day. The monitor instead asks whether a feature moved further than it normally does between
comparable windows, weighted by what the model uses.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipelines.evaluation.metrics import flight_log_losses
from pipelines.training.dataset import LABEL, TrainingData

REFERENCE_ROWS = 5000


def permutation_importance(predict, x: np.ndarray, y: np.ndarray, seed: int) -> np.ndarray:
    """Increase of log loss when each feature is shuffled (>= 0), normalised to sum to 1."""
    from sklearn.metrics import log_loss

    rng = np.random.default_rng(seed)
    base = log_loss(y, np.clip(predict(x), 1e-7, 1 - 1e-7), labels=[0, 1])
    gains = []
    for j in range(x.shape[1]):
        shuffled = x.copy()
        shuffled[:, j] = rng.permutation(shuffled[:, j])
        gains.append(max(log_loss(y, np.clip(predict(shuffled), 1e-7, 1 - 1e-7), labels=[0, 1]) - base, 0.0))
    gains = np.asarray(gains)
    return gains / gains.sum() if gains.sum() > 0 else np.full(len(gains), 1 / len(gains))


def natural_drift(frame: pd.DataFrame, columns: list[str], day: pd.Series) -> dict[str, float]:
    """Per column, the largest KS statistic between one day of the reference period and the others:
    the drift that is normal here. Needs two days or more (else 0)."""
    from scipy.stats import ks_2samp

    days = sorted(day.unique())
    out = {}
    for column in columns:
        values = frame[column].to_numpy(dtype=float)
        statistics = [0.0]
        for d in days if len(days) > 1 else []:
            inside, outside = values[(day == d).to_numpy()], values[(day != d).to_numpy()]
            inside, outside = inside[np.isfinite(inside)], outside[np.isfinite(outside)]
            if len(inside) >= 20 and len(outside) >= 20:
                # the statistic alone is needed: the asymptotic p-value is the cheap one (exact is 1.4 s a model)
                statistics.append(float(ks_2samp(inside, outside, method="asymp").statistic))
        out[column] = max(statistics)
    return out


def build_reference(data: TrainingData, predict, seed: int, categorical: list[str]) -> tuple[pd.DataFrame, dict]:
    """The sample of the validation and holdout days (what the model was judged on) and its config;
    `categorical` columns (the spec's `monitoring.categorical`) are compared by their categories."""
    frame = data.frame[data.frame["split"].isin(["validation", "holdout"])].reset_index(drop=True)
    if len(frame) > REFERENCE_ROWS:
        frame = frame.sample(REFERENCE_ROWS, random_state=seed).reset_index(drop=True)
    x = frame[data.features].to_numpy(dtype=np.float32)
    y = frame[LABEL].to_numpy(dtype=int)
    probability = predict(x)
    sample = frame[list(categorical)].copy()
    sample[data.features] = x
    sample["probability"] = probability
    sample[LABEL] = y
    sample["day"] = pd.to_datetime(frame["scheduled_departure_local"]).dt.date.astype(str)
    weights = permutation_importance(predict, x, y, seed)
    natural = natural_drift(sample, [*data.features, "probability"], sample["day"])
    config = {
        "features": data.features,
        "categorical": list(categorical),
        "categories": {c: sorted(sample[c].astype(str).unique()) for c in categorical},
        "weights": dict(zip(data.features, map(float, weights), strict=True)),
        "natural_drift": natural,
        "reference_log_loss": float(flight_log_losses(y, probability).mean()),
        "reference_late_rate": float(y.mean()),
        "reference_days": sorted(sample["day"].unique()),
        "rows": len(sample),
    }
    return sample, config
