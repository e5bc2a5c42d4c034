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
from pipelines.usecases.spec import HYPERPARAMETERS, windows
from tests.conftest import make_settings

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
    params = HYPERPARAMETERS["xgboost"]
    single = train_xgboost(data, params, seed=7, device="cpu")
    spread = train_xgboost_dask(data, params, seed=7, client=client)
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


def test_the_training_dag_step_trains_on_the_dask_cluster_when_configured(client, built, tmp_path):
    """`train_candidate` with PLATFORM_DASK_SCHEDULER set: the real days' candidate is fitted by the
    cluster's two workers and sealed and reported like any other; an unreachable scheduler is a
    clear error and leaves no candidate."""
    import json
    from pathlib import Path

    from pipelines.errors import PlatformError
    from pipelines.orchestration import training

    settings = make_settings(built.settings.data_root, artifact_store_uri=(tmp_path / "store").as_uri(),
                             usecase_overrides={"flight_delay": windows(3, 1, 1)},
                             dask_scheduler=client.scheduler.address)  # fmt: skip
    folder = training.prepare_run(settings, "flight_delay", built.days[-1], "dask-run")
    training.train_candidate(settings, folder, "xgboost")
    candidate = json.loads((Path(folder) / "xgboost" / "candidate.json").read_text())
    assert candidate["params"]["dask_workers"] == 2 and candidate["device"] == "cpu"
    assert candidate["evaluation"]["onnx"]["parity"] < 1e-4 and candidate["evaluation"]["holdout"]["roc_auc"] > 0.55

    unreachable = settings.model_copy(update={"dask_scheduler": "tcp://127.0.0.1:9"})
    other = training.prepare_run(unreachable, "flight_delay", built.days[-1], "dask-down")
    with pytest.raises(PlatformError, match="no Dask scheduler answers at tcp://127.0.0.1:9"):
        training.train_candidate(unreachable, other, "xgboost")
    assert not (Path(other) / "xgboost" / "candidate.json").exists()
