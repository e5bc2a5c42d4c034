"""Scale-out training: XGBoost through `xgboost.dask` on a real two-worker Dask LocalCluster (two
processes) matches the single-process model's quality on the same data, and exports to the same
ONNX contract. Tolerance: holdout ROC AUC and log loss within 0.005 of the single-process model's."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import log_loss, roc_auc_score

from bench.training_devices import synthetic
from pipelines.export.onnx import OnnxScorer
from pipelines.training.trainers import train_xgboost, train_xgboost_dask

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def client():
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with Client(cluster) as connected:
            yield connected


def test_two_workers_match_one_process(client):
    data = synthetic(80_000)
    x, y = (a.to_numpy() for a in data.xy("holdout"))
    single = train_xgboost(data, seed=7, device="cpu")
    spread = train_xgboost_dask(data, seed=7, client=client)
    assert spread.params["dask_workers"] == 2
    scores = {}
    for name, model in (("single", single), ("dask", spread)):
        p = OnnxScorer(model.onnx, model.onnx_output).predict(x)
        assert np.max(np.abs(p - model.predict_native(x))) < 1e-4  # the served graph is the trained model
        scores[name] = (roc_auc_score(y, p), log_loss(y, p))
    print(f"holdout ROC AUC / log loss: single {scores['single']}, two Dask workers {scores['dask']}")
    assert abs(scores["dask"][0] - scores["single"][0]) < 0.005, scores
    assert abs(scores["dask"][1] - scores["single"][1]) < 0.005, scores
    assert abs(spread.threshold - single.threshold) < 0.05 and spread.native[:1] == b"{"  # UBJ, as stored
