"""Both CUDA training paths (XGBoost device="cuda", the MLP on a CUDA tensor device). Marked `gpu`:
skipped where no CUDA device is visible; run on a CUDA machine with `pytest -m gpu`."""

from __future__ import annotations

import numpy as np
import pytest

from bench.training_devices import synthetic
from pipelines.export.onnx import OnnxScorer
from pipelines.training.trainers import resolve_device, train_mlp, train_xgboost
from pipelines.usecases.spec import HYPERPARAMETERS

torch = pytest.importorskip("torch")
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device visible (run on a GPU machine)"),
]


def test_auto_picks_cuda():
    assert resolve_device("auto") == "cuda"


@pytest.mark.parametrize("family, trainer", [("xgboost", train_xgboost), ("mlp", train_mlp)], ids=["xgboost", "mlp"])
def test_cuda_training_matches_cpu_quality_and_exports(family, trainer):
    from sklearn.metrics import roc_auc_score

    data = synthetic(60_000)
    x, y = (a.to_numpy() for a in data.xy("holdout"))
    results = {}
    for device in ("cpu", "cuda"):
        model = trainer(data, HYPERPARAMETERS[family], seed=11, device=device)
        assert model.device == device
        scorer = OnnxScorer(model.onnx, model.onnx_output)
        assert np.max(np.abs(scorer.predict(x) - model.predict_native(x))) < 1e-4
        results[device] = (roc_auc_score(y, scorer.predict(x)), model.seconds)
    assert abs(results["cuda"][0] - results["cpu"][0]) < 0.01, results
    print(
        f"{trainer.__name__}: ROC AUC cpu {results['cpu'][0]:.4f} cuda {results['cuda'][0]:.4f}; "
        f"fit seconds cpu {results['cpu'][1]:.2f} cuda {results['cuda'][1]:.2f}"
    )


def test_under_auto_xgboost_goes_to_cuda_only_where_this_machines_calibration_shows_it_faster(tmp_path):
    from pipelines.compute.planner import current_calibration
    from pipelines.orchestration.training import training_device
    from pipelines.settings import load_settings

    settings = load_settings(data_root=tmp_path, device="auto")
    calibration = current_calibration(settings)  # measures CPU and CUDA fits on this machine
    assert set(calibration.training) == {"cpu", "cuda"} and calibration.hardware["cuda"]
    for rows in (1_000, 5_000_000):
        device, why = training_device(settings, "xgboost", rows)
        cpu, gpu = (float(s.split()[0]) for s in why.split(": CUDA ")[1].split(", CPU "))
        assert why.startswith(f"calibrated fit of {rows} rows") and device == ("cuda" if gpu < cpu else "cpu")
    assert training_device(settings, "mlp", 1_000) == ("cuda", "PLATFORM_DEVICE=auto: cuda")
