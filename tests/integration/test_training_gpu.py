"""Both CUDA training paths (XGBoost device="cuda", the MLP on a CUDA tensor device). Marked `gpu`:
skipped where no CUDA device is visible; run on a CUDA machine with `pytest -m gpu`."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from pipelines.export.onnx import OnnxScorer
from pipelines.training.dataset import LABEL, TrainingData, TrainingWindow
from pipelines.training.trainers import resolve_device, train_mlp, train_xgboost

torch = pytest.importorskip("torch")
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device visible (run on a GPU machine)"),
]


def synthetic(rows: int = 60_000, n_features: int = 23, seed: int = 0) -> TrainingData:
    """A learnable problem of the model's shape: lateness depends on a few inputs, with missing values."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, n_features)).astype("float32")
    logit = 1.2 * x[:, 0] - 0.8 * x[:, 1] + 0.5 * x[:, 2] * x[:, 3] - 1.3
    y = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype("int64")
    x[rng.random(x.shape) < 0.02] = np.nan
    features = [f"f{i}" for i in range(n_features)]
    frame = pd.DataFrame(x, columns=features)
    frame[LABEL] = y
    frame["split"] = np.where(
        np.arange(rows) < rows * 0.7, "train", np.where(np.arange(rows) < rows * 0.85, "validation", "holdout")
    )
    window = TrainingWindow(dt.date(2013, 1, 1), dt.date(2013, 1, 3), dt.date(2013, 1, 4), dt.date(2013, 1, 5))
    return TrainingData(frame, features, window)


def test_auto_picks_cuda():
    assert resolve_device("auto") == "cuda"


@pytest.mark.parametrize("trainer", [train_xgboost, train_mlp], ids=["xgboost", "mlp"])
def test_cuda_training_matches_cpu_quality_and_exports(trainer):
    from sklearn.metrics import roc_auc_score

    data = synthetic()
    x, y = (a.to_numpy() for a in data.xy("holdout"))
    results = {}
    for device in ("cpu", "cuda"):
        model = trainer(data, seed=11, device=device)
        assert model.device == device
        scorer = OnnxScorer(model.onnx, model.onnx_output)
        assert np.max(np.abs(scorer.predict(x) - model.predict_native(x))) < 1e-4
        results[device] = (roc_auc_score(y, scorer.predict(x)), model.seconds)
    assert abs(results["cuda"][0] - results["cpu"][0]) < 0.01, results
    print(
        f"{trainer.__name__}: ROC AUC cpu {results['cpu'][0]:.4f} cuda {results['cuda'][0]:.4f}; "
        f"fit seconds cpu {results['cpu'][1]:.2f} cuda {results['cuda'][1]:.2f}"
    )
