"""Training on real days of flights (the session's built warehouse and feature store): a champion that is
encrypted, signed and traceable to its data; a deliberately worse candidate rejected with reasons;
ONNX parity of both families; a time split that never looks ahead."""

from __future__ import annotations

import datetime as dt
import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipelines.errors import PlatformError
from pipelines.ingest.landing import manifest_path, partition_path
from pipelines.orchestration import training
from pipelines.registry.registry import Registry
from pipelines.security.audit import audit_ledger
from pipelines.security.store import artifact_store
from pipelines.security.vault import evaluation_vault
from pipelines.settings import REPO_ROOT, load_settings
from pipelines.training.dataset import TrainingData, TrainingWindow, feature_definitions_hash
from pipelines.training.trainers import load_mlp, train_xgboost
from pipelines.usecases.spec import HYPERPARAMETERS, read_snapshot, resolve_usecase, windows, write_snapshot
from tests.conftest import FEW_DAYS_GATE, make_settings

MODEL = "flight_delay"


@pytest.fixture(scope="module")
def trained(built, tmp_path_factory):
    """One training run over the five built days: fit on days 1-3, early-stop on day 4, judge on day 5.
    Three days of January with the features known at the start of each day reach a holdout ROC AUC
    of about 0.58: the minimum is lowered to 0.55 for them (make run's seven days reach 0.65)."""
    settings = make_settings(
        built.settings.data_root,
        artifact_store_uri=(tmp_path_factory.mktemp("artifacts") / "store").as_uri(),
        usecase_overrides={MODEL: {**windows(3, 1, 1), **FEW_DAYS_GATE}},
    )  # fmt: skip
    folder = training.prepare_run(settings, MODEL, built.days[-1], "test-run-1")
    for family in ("xgboost", "mlp"):
        training.train_candidate(settings, folder, family)
    outcome = training.gate_and_register(settings, folder)
    ledger = audit_ledger(settings)
    registry = Registry(artifact_store(settings, ledger), evaluation_vault(settings), ledger)
    return settings, folder, outcome, registry


def test_the_window_splits_by_time_and_never_looks_ahead(trained, built):
    settings, folder, _, _ = trained
    data = TrainingData.load(Path(folder))
    days = {
        name: {d.date() for d in data.split(name)["scheduled_departure_local"]}
        for name in ("train", "validation", "holdout")
    }
    assert days == {"train": set(built.days[:3]), "validation": {built.days[3]}, "holdout": {built.days[4]}}
    assert data.features[-3:] == ["dep_hour", "dep_weekday", "dep_month"]
    assert not {"tailnum_hash", "flight_id", data.label} & set(data.features)
    assert (data.label, data.entity_id, data.task) == ("is_late_arrival", "flight_id", "binary_classification")
    with pytest.raises(PlatformError, match="never landed"):
        training.resolve_window(settings, resolve_usecase(settings, MODEL), built.days[-1] + dt.timedelta(days=5))


def test_a_training_run_registers_an_encrypted_signed_champion_that_traces_to_its_data(trained, built):
    settings, _, outcome, registry = trained
    champion = registry.alias(MODEL, "champion")
    assert champion is not None and outcome["champion"] == champion["version"]
    manifest, files = registry.load_files(MODEL, champion["version"])
    assert manifest["gate"]["passed"] and manifest["gate"]["reasons"] == []
    native = "model.ubj" if manifest["family"] == "xgboost" else "model.pt"
    assert set(files) == {"model.onnx", native, "reference.parquet"}
    # the drift reference: the judged days' flights, the model's own probabilities, natural drift per feature
    reference = pd.read_parquet(io.BytesIO(files["reference.parquet"]))
    monitoring = manifest["monitoring"]
    assert set(monitoring["features"]) <= set(reference.columns) and {"carrier", "origin"} <= set(reference.columns)
    assert sorted(reference.day.unique()) == monitoring["reference_days"] == [d.isoformat() for d in built.days[-2:]]
    assert reference.prediction.between(0, 1).all() and sum(monitoring["weights"].values()) == pytest.approx(1)
    assert set(monitoring["natural_drift"]) == {*monitoring["features"], "prediction"}
    # at rest, nothing of the model is readable
    stored = b"".join(registry.store.get(k) for k in registry.store.keys("sealed"))
    assert files["model.onnx"][:200] not in stored

    lineage = manifest["lineage"]
    for day in built.days:
        landed = json.loads(manifest_path(partition_path(settings, "flights", day)).read_text())
        assert lineage["raw_partitions"]["flights"][day.isoformat()]["sha256"] == landed["sha256"]
    assert all(v["success"] for v in lineage["validation"])
    assert lineage["feature_service"]["name"] == "flight_delay_v3"
    assert lineage["feature_service"]["definitions_sha256"] == feature_definitions_hash(
        settings, resolve_usecase(settings, MODEL)
    )
    assert lineage["feature_service"]["features"] == manifest["onnx_io"]["features"]
    assert lineage["dbt"]["manifest_sha256"] and "model.flights.flights" in lineage["dbt"]["models"]
    import hashlib

    assert (
        lineage["requirements"]["requirements.txt"]
        == hashlib.sha256((REPO_ROOT / "requirements.txt").read_bytes()).hexdigest()
    )
    assert lineage["code"]["commit"]
    assert manifest["training"]["seed"] == settings.seed and manifest["training"]["device"] == "cpu"
    assert manifest["training"]["device_choice"] == "PLATFORM_DEVICE=auto: cpu"  # no CUDA here: nothing to plan
    assert manifest["training"]["estimated_cost_usd"] > 0
    for name in ("roc_auc", "pr_auc", "log_loss", "log_loss_skill", "brier", "ece"):
        assert np.isfinite(manifest["metrics"]["holdout"][name])
    assert set(manifest["metrics"]["slices"]) == {"carrier", "origin", "dep_month"}
    html = Path(manifest["report_html"]).read_text()
    assert "<svg" in html and "naive baseline" in html


@pytest.mark.parametrize("family", ["xgboost", "mlp"])
def test_the_decision_threshold_is_chosen_on_the_validation_days_probabilities(trained, family):
    """Between 0 and 1, and neither everything nor nothing late on the holdout (a threshold chosen on
    class labels instead of probabilities would be 0 or 1: every flight late, or none)."""
    settings, folder, outcome, registry = trained
    [entry] = [r for r in outcome["registered"] if r["family"] == family]
    manifest, files = registry.load_files(MODEL, entry["version"])
    data = TrainingData.load(Path(folder))
    from pipelines.export.onnx import OnnxScorer

    p = OnnxScorer(files["model.onnx"], manifest["onnx_io"]["output"]).predict(
        data.split("holdout")[data.features].to_numpy(dtype=np.float32)
    )
    threshold = manifest["threshold"]
    assert 0 < threshold < 1 and len(np.unique(p)) > 100
    assert 0.05 < float(np.mean(p >= threshold)) < 0.95


@pytest.mark.parametrize("family", ["xgboost", "mlp"])
def test_onnx_matches_the_native_model_reloaded_from_its_safe_format(trained, family):
    settings, folder, outcome, registry = trained
    [entry] = [r for r in outcome["registered"] if r["family"] == family]
    manifest, files = registry.load_files(MODEL, entry["version"])
    data = TrainingData.load(Path(folder))
    x = data.split("holdout")[data.features].to_numpy(dtype=np.float32)
    from pipelines.export.onnx import OnnxScorer

    onnx = OnnxScorer(files["model.onnx"], manifest["onnx_io"]["output"]).predict(x)
    if family == "xgboost":
        import xgboost as xgb

        booster = xgb.Booster()
        booster.load_model(bytearray(files["model.ubj"]))
        native = booster.predict(xgb.DMatrix(x))
    else:
        import torch

        model = load_mlp(files["model.pt"], len(data.features), manifest["training"]["params"]["hidden"])
        with torch.no_grad():
            native = model(torch.from_numpy(x)).numpy()[:, 0]
    assert np.max(np.abs(onnx - native)) < settings.onnx_parity_tolerance
    assert manifest["metrics"]["onnx"]["parity"] < settings.onnx_parity_tolerance


def test_xgboost_never_lowers_its_prediction_as_an_increasing_feature_rises(trained):
    """The gate's behaviour.increasing (route_late_rate_7d) is a monotone constraint of training: raising the
    feature for every holdout row, by any amount, lowers no row's prediction."""
    import xgboost as xgb

    settings, folder, outcome, registry = trained
    [entry] = [r for r in outcome["registered"] if r["family"] == "xgboost"]
    manifest, files = registry.load_files(MODEL, entry["version"])
    data = TrainingData.load(Path(folder))
    assert data.increasing == ["route_late_rate_7d"]
    assert manifest["training"]["params"]["monotone_constraints"].count("1") == 1
    booster = xgb.Booster()
    booster.load_model(bytearray(files["model.ubj"]))
    x = data.split("holdout")[data.features].to_numpy(dtype=np.float32)
    column = data.features.index("route_late_rate_7d")
    x = x[~np.isnan(x[:, column])]  # a missing rate takes its own branch: not a value to raise
    before = booster.predict(xgb.DMatrix(x))
    for step in (0.05, 0.3, 1.0):
        raised = x.copy()
        raised[:, column] += step
        assert (booster.predict(xgb.DMatrix(raised)) >= before - 1e-6).all(), step


def test_training_is_deterministic_for_a_seed(trained):
    _, folder, _, _ = trained
    data = TrainingData.load(Path(folder))
    first, second = (train_xgboost(data, HYPERPARAMETERS["xgboost"], seed=7, device="cpu") for _ in range(2))
    assert first.native == second.native


def test_a_deliberately_worse_candidate_is_rejected_with_reasons_and_never_promoted(trained, tmp_path):
    settings, folder, _, registry = trained
    champion_before = registry.alias(MODEL, "champion")["version"]
    worse = tmp_path / "worse"
    data = TrainingData.load(Path(folder))
    train = data.frame["split"] == "train"
    rng = np.random.default_rng(0)
    frame = data.frame.copy()
    frame.loc[train, data.label] = rng.permutation(frame.loc[train, data.label].to_numpy())  # labels carry no signal
    TrainingData(frame, data.features, data.window, data.label, data.entity_id, data.task).save(worse)
    write_snapshot(read_snapshot(Path(folder)), worse)  # the same spec
    training.train_candidate(settings, str(worse), "xgboost")
    outcome = training.gate_and_register(settings, str(worse), ["xgboost"])
    [entry] = outcome["registered"]
    assert entry["passed"] is False and "champion" not in outcome and "challenger" not in outcome
    assert any("regresses against champion" in r for r in entry["reasons"])
    assert registry.alias(MODEL, "champion")["version"] == champion_before
    manifest = registry.manifest(MODEL, entry["version"])
    assert manifest["gate"]["passed"] is False and manifest["gate"]["reasons"] == entry["reasons"]
    assert manifest["gate"]["champion_version"] == champion_before
    decisions = [r for r in audit_ledger(settings).records() if r.action == "gate.decision"]
    assert decisions[-1].details == {"passed": False, "reasons": entry["reasons"]}


def test_the_window_ends_where_the_triggering_event_says():
    assert training.window_end({"last_day": "2013-03-04"}, [{"day": "2013-05-01"}]) == dt.date(2013, 3, 4)
    assert training.window_end(
        {}, [{"day": "2013-01-03"}, {"day": "2013-01-05"}, {"window_end": "2013-01-04"}]
    ) == dt.date(2013, 1, 5)
    assert training.window_end(None, []) is None
    with pytest.raises(PlatformError, match="not a date"):
        training.window_end({"last_day": "yesterday"}, [])
    window = TrainingWindow.ending(dt.date(2013, 1, 31), 21, 3, 7)
    assert (window.train_start, window.train_end, window.validation_end) == (
        dt.date(2013, 1, 1), dt.date(2013, 1, 21), dt.date(2013, 1, 24))  # fmt: skip
    known = window.known_at(resolve_usecase(load_settings(), MODEL).tz)
    assert known.isoformat() == "2013-02-01T00:00:00-05:00"  # the end of the holdout, New York time
