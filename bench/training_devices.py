"""Training on CPU and on CUDA, side by side: both trainers of the platform (XGBoost `hist`, the
PyTorch MLP) fitted on the same synthetic problem of the model's shape (23 features, 2% missing,
one flight in five late), reporting fit seconds, holdout ROC AUC through ONNX Runtime and the
CUDA/CPU speed-up. Without a CUDA device it reports the CPU alone. Usage:

    .venv/bin/python -m bench.training_devices [--rows 100000] [--out bench/results/training_devices.json]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
from pathlib import Path

import numpy as np
import pandas as pd

from bench import write_results


def synthetic(rows: int, n_features: int = 23, seed: int = 0):
    """A learnable problem of the model's shape: lateness depends on a few inputs, with missing values."""
    from pipelines.training.dataset import TrainingData, TrainingWindow

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, n_features)).astype("float32")
    logit = 1.2 * x[:, 0] - 0.8 * x[:, 1] + 0.5 * x[:, 2] * x[:, 3] - 1.3
    y = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype("int64")
    x[rng.random(x.shape) < 0.02] = np.nan
    features = [f"f{i}" for i in range(n_features)]
    frame = pd.DataFrame(x, columns=features)
    frame["label"] = y
    frame["split"] = np.where(
        np.arange(rows) < rows * 0.7, "train", np.where(np.arange(rows) < rows * 0.85, "validation", "holdout")
    )
    window = TrainingWindow(dt.date(2013, 1, 1), dt.date(2013, 1, 3), dt.date(2013, 1, 4), dt.date(2013, 1, 5))
    return TrainingData(frame, features, window, "label", "id", "binary_classification")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--out", type=Path, default=Path("bench/results/training_devices.json"))
    parser.add_argument("--family", action="append", choices=["xgboost", "mlp"], help="default: both")
    args = parser.parse_args()

    import torch
    from sklearn.metrics import roc_auc_score

    from pipelines.export.onnx import OnnxScorer
    from pipelines.training.trainers import train_mlp, train_xgboost
    from pipelines.usecases.spec import HYPERPARAMETERS

    data = synthetic(args.rows)
    x, y = (a.to_numpy() for a in data.xy("holdout"))
    devices = ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]
    name = torch.cuda.get_device_name(0) if "cuda" in devices else None
    results = {"rows": args.rows, "cpus": os.cpu_count(), "gpu": name, "families": {}}
    for family, trainer in (("xgboost", train_xgboost), ("mlp", train_mlp)):
        if args.family and family not in args.family:
            continue
        runs = {}
        for device in devices:
            model = trainer(data, HYPERPARAMETERS[family], seed=11, device=device)
            scored = OnnxScorer(model.onnx, model.onnx_output).predict(x)
            runs[device] = {"fit_seconds": model.seconds, "roc_auc": float(roc_auc_score(y, scored))}
        if "cuda" in runs:
            runs["speedup"] = runs["cpu"]["fit_seconds"] / runs["cuda"]["fit_seconds"]
        results["families"][family] = runs
    lines = [
        f"## Training on CPU ({results['cpus']} cores) and CUDA ({name or 'none here'}), {args.rows} rows",
        "",
        "| family | CPU fit s | CUDA fit s | speed-up | ROC AUC CPU / CUDA |",
        "|---|---|---|---|---|",
    ]
    for family, runs in results["families"].items():
        cuda = runs.get("cuda")
        lines.append(
            f"| {family} | {runs['cpu']['fit_seconds']:.2f} | {cuda['fit_seconds']:.2f} | {runs['speedup']:.2f}x | "
            f"{runs['cpu']['roc_auc']:.4f} / {cuda['roc_auc']:.4f} |"
            if cuda
            else f"| {family} | {runs['cpu']['fit_seconds']:.2f} | - | - | {runs['cpu']['roc_auc']:.4f} / - |"
        )
    write_results(args.out, results, "\n".join(lines))


if __name__ == "__main__":
    main()
