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

from pipelines.evaluation.metrics import row_losses
from pipelines.training.dataset import TrainingData
from pipelines.usecases.spec import UseCase

REFERENCE_ROWS = 5000


def permutation_importance(task: str, predict, x: np.ndarray, y: np.ndarray, seed: int) -> np.ndarray:
    """Increase of the task's loss (log loss, squared error) when each feature is shuffled (>= 0),
    normalised to sum to 1."""
    rng = np.random.default_rng(seed)
    base = row_losses(task, y, predict(x)).mean()
    gains = []
    for j in range(x.shape[1]):
        shuffled = x.copy()
        shuffled[:, j] = rng.permutation(shuffled[:, j])
        gains.append(max(float(row_losses(task, y, predict(shuffled)).mean() - base), 0.0))
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


def build_reference(data: TrainingData, predict, seed: int, usecase: UseCase) -> tuple[pd.DataFrame, dict]:
    """The sample of the validation and holdout days (what the model was judged on) and its config;
    the spec's `monitoring.categorical` columns are compared by their categories."""
    categorical = usecase.monitoring.categorical
    frame = data.frame[data.frame["split"].isin(["validation", "holdout"])].reset_index(drop=True)
    if len(frame) > REFERENCE_ROWS:
        frame = frame.sample(REFERENCE_ROWS, random_state=seed).reset_index(drop=True)
    x = frame[data.features].to_numpy(dtype=np.float32)
    y = frame[data.label].to_numpy(dtype=int if data.task == "binary_classification" else float)
    prediction = predict(x)
    sample = frame[list(categorical)].copy()
    sample[data.features] = x
    sample["prediction"] = prediction
    sample[data.label] = y
    sample["day"] = pd.to_datetime(frame[usecase.features.request_time.column]).dt.date.astype(str)
    sample[data.entity_id] = frame[data.entity_id].astype(str)  # which items: an erasure removes a subject's
    weights = permutation_importance(data.task, predict, x, y, seed)
    natural = natural_drift(sample, [*data.features, "prediction"], sample["day"])
    config = {
        "features": data.features,
        "label": data.label,
        "categorical": list(categorical),
        "categories": {c: sorted(sample[c].astype(str).unique()) for c in categorical},
        "weights": dict(zip(data.features, map(float, weights), strict=True)),
        "natural_drift": natural,
        "task": data.task,
        "reference_loss": float(row_losses(data.task, y, prediction).mean()),
        "reference_label_mean": float(y.mean()),
        "reference_days": sorted(sample["day"].unique()),
        "rows": len(sample),
    }
    return sample, config
