"""The bike-rentals use case end to end through the platform's stages, scaled down: six weeks of
2011 landed, validated and loaded, its dbt models built, its features in Feast, a regressor of each
family trained, exported to ONNX, gated against the trailing-mean baseline and registered.

Everything it runs comes from usecases/bike_rentals/ (spec, Feast definitions), dbt/models/bike_rentals/
and expectations/raw_bikeshare_hours.json: no code under pipelines/ knows about bikes."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipelines.ingest.sources.package_file import default_source_dir
from pipelines.orchestration import training
from pipelines.orchestration.bulk import build_days
from pipelines.registry.registry import Registry
from pipelines.security.audit import audit_ledger
from pipelines.security.store import artifact_store
from pipelines.security.vault import evaluation_vault
from pipelines.settings import REPO_ROOT
from pipelines.training.dataset import SPLITS, TrainingData
from pipelines.usecases.spec import load_usecase, read_snapshot, resolve_usecase, windows, write_snapshot
from tests.conftest import make_settings

NAME = "bike_rentals"
SPEC = load_usecase(REPO_ROOT / "usecases", NAME)
FIRST, LAST = dt.date(2011, 4, 1), dt.date(2011, 5, 12)  # 42 days: a week of history, then 21/7/7


@pytest.fixture(scope="module")
def bikes(tmp_path_factory):
    settings = make_settings(tmp_path_factory.mktemp("bikes") / "var", usecase_overrides={NAME: windows(21, 7, 7)})
    # land, load, dbt, Feast; its suite is run on days of its own below
    build_days(settings, resolve_usecase(settings, NAME), FIRST, LAST, validate=False)
    folder = training.prepare_run(settings, NAME, LAST, "bikes-1")
    for family in SPEC.training.families:
        training.train_candidate(settings, folder, family)
    outcome = training.gate_and_register(settings, folder)
    ledger = audit_ledger(settings)
    registry = Registry(artifact_store(settings, ledger), evaluation_vault(settings), ledger)
    return settings, Path(folder), outcome, registry


def source_hours() -> pd.DataFrame:
    """The published file, read independently of the platform: each row's date from the day of the year."""
    frame = pd.read_csv(default_source_dir(SPEC.sources) / "Bikeshare.csv")
    frame["date"] = pd.Timestamp("2011-01-01") + pd.to_timedelta(frame["day"] - 1, unit="D")
    return frame


def test_the_dataset_is_a_time_split_regression_frame_of_whole_days(bikes):
    _, folder, _, _ = bikes
    data = TrainingData.load(folder)
    assert (data.task, data.label, data.entity_id) == ("regression", "riders", "hour_id")
    stored = ["riders_same_hour_7d", "riders_same_hour_28d", "riders_same_hour_day_kind_28d", "riders_yesterday",
              "riders_daily_7d"]  # fmt: skip
    assert data.features == stored + SPEC.features.request_features
    days = {name: sorted({d.date() for d in data.split(name)["hour_start_local"]}) for name in SPLITS}
    assert (days["train"][0], days["train"][-1]) == (dt.date(2011, 4, 8), dt.date(2011, 4, 28))
    assert (days["validation"][0], days["holdout"][0], days["holdout"][-1]) == (
        dt.date(2011, 4, 29), dt.date(2011, 5, 6), dt.date(2011, 5, 12))  # fmt: skip
    source = source_hours()
    window = source[(source.date >= "2011-04-08") & (source.date <= "2011-05-12")]
    assert len(data.frame) == len(window)  # every published hour of the window, none twice
    assert data.frame["riders"].sum() == window["bikers"].sum()


def test_its_suite_passes_the_published_days_and_stops_a_bad_one(bikes):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from pipelines.errors import ValidationFailed
    from pipelines.ingest.landing import partition_path
    from pipelines.validation import validate_partition

    settings = bikes[0]
    for day in (FIRST, LAST):
        outcome = validate_partition(settings, SPEC, "bikeshare_hours", day)
        assert outcome.success and outcome.evaluated == 33
    path = partition_path(settings, "bikeshare_hours", LAST)
    landed, good = path.read_bytes(), pq.read_table(path)
    riders = good["bikers"].to_pylist()
    bad = good.set_column(
        good.schema.get_field_index("bikers"), "bikers", pa.array([-riders[0], *riders[1:]], pa.int32())
    )
    pq.write_table(bad, path)
    try:
        with pytest.raises(ValidationFailed, match="bikers"):
            validate_partition(settings, SPEC, "bikeshare_hours", LAST)
    finally:
        path.write_bytes(landed)


def test_stored_features_are_what_was_known_at_the_start_of_the_day(bikes):
    """Recomputed from the published file: the same hour's mean riders over the 7 days before the row's
    day (an hour without a row counts 0), over the days of the same kind among the 28 before it, and
    the whole day before."""
    _, folder, _, _ = bikes
    frame = TrainingData.load(folder).frame
    source = source_hours()
    source = source[source.date >= pd.Timestamp(FIRST)]  # what was landed: nothing before FIRST
    riders = source.pivot_table(index="date", columns="hr", values="bikers", aggfunc="sum").fillna(0)
    daily = source.groupby("date")["bikers"].sum()
    kinds = source.groupby("date")["workingday"].first()
    for _, row in frame.sample(40, random_state=3).iterrows():
        day = pd.Timestamp(row["hour_start_local"].date())
        week = riders.loc[day - pd.Timedelta(days=7) : day - pd.Timedelta(days=1), row["hour_of_day"]]
        assert row["riders_same_hour_7d"] == pytest.approx(week.sum() / 7)
        month = riders.loc[day - pd.Timedelta(days=28) : day - pd.Timedelta(days=1), row["hour_of_day"]]
        kind = kinds.loc[month.index] == row["is_workingday"]
        assert row["riders_same_hour_day_kind_28d"] == pytest.approx(month[kind].mean())
        assert row["riders_yesterday"] == pytest.approx(daily[day - pd.Timedelta(days=1)])


def test_the_regressor_beats_the_baseline_through_the_gate_and_becomes_champion(bikes):
    _, _, outcome, registry = bikes
    assert outcome["task"] == "regression"
    # six weeks of data are too few for the MLP: it stays under the limit's 0.85 of the baseline's RMSE
    passed = {r["family"]: r["passed"] for r in outcome["registered"]}
    assert passed == {"xgboost": True, "mlp": False}
    champion = registry.alias(NAME, "champion")
    assert champion is not None and outcome["champion"] == champion["version"]
    manifest, files = registry.load_files(NAME, champion["version"])
    holdout, baseline = manifest["metrics"]["holdout"], manifest["metrics"]["baseline"]
    assert manifest["gate"]["passed"] and holdout["rmse"] < baseline["rmse"]
    assert holdout["rmse_vs_baseline"] == pytest.approx(holdout["rmse"] / baseline["rmse"])
    assert holdout["rmse_vs_baseline"] <= SPEC.gate.limits["rmse_vs_baseline"].max
    checks = {c["name"] for c in manifest["gate"]["checks"]}
    assert checks >= {"rmse_vs_baseline", "bias", "bias_max", "r2", "behaviour:minimum_functionality_clear_cases"}
    assert set(manifest["metrics"]["slices"]) == {"weather_code", "is_workingday"}
    assert manifest["threshold"] is None
    assert manifest["lineage"]["feature_service"]["name"] == "bike_rentals_v1"
    assert set(manifest["lineage"]["raw_partitions"]) == {"bikeshare_hours"}


@pytest.mark.parametrize("family", ["xgboost", "mlp"])
def test_the_onnx_regressor_answers_riders_like_the_native_model(bikes, family):
    settings, folder, outcome, registry = bikes
    [entry] = [r for r in outcome["registered"] if r["family"] == family]
    manifest, files = registry.load_files(NAME, entry["version"])
    data = TrainingData.load(folder)
    x = data.split("holdout")[data.features].to_numpy(dtype=np.float32)
    from pipelines.export.onnx import OnnxScorer

    predicted = OnnxScorer(files["model.onnx"], manifest["onnx_io"]["output"]).predict(x)
    assert predicted.shape == (len(x),) and np.isfinite(predicted).all()
    assert 20 < predicted.mean() < 600  # riders per hour, not a probability
    assert manifest["metrics"]["onnx"]["parity"] < settings.onnx_parity_tolerance


def test_a_regressor_trained_on_shuffled_labels_is_rejected_against_the_champion(bikes, tmp_path):
    settings, folder, _, registry = bikes
    champion = registry.alias(NAME, "champion")["version"]
    data = TrainingData.load(folder)
    frame = data.frame.copy()
    train = frame["split"] == "train"
    frame.loc[train, "riders"] = np.random.default_rng(0).permutation(frame.loc[train, "riders"].to_numpy())
    worse = tmp_path / "worse"
    TrainingData(frame, data.features, data.window, data.label, data.entity_id, data.task).save(worse)
    write_snapshot(read_snapshot(folder), worse)
    training.train_candidate(settings, str(worse), "xgboost")
    outcome = training.gate_and_register(settings, str(worse), ["xgboost"])
    [entry] = outcome["registered"]
    assert entry["passed"] is False and "champion" not in outcome and "challenger" not in outcome
    assert any("RMSE" in r or "rmse vs baseline" in r for r in entry["reasons"])
    assert registry.alias(NAME, "champion")["version"] == champion


# Served beside the flights in the same model service: the day after the trained window, from the online
# store materialized to its start; a challenger walked through the canary; the day judged by monitoring.
SERVED_DAY = LAST + dt.timedelta(days=1)
CANARY = {"canary_steps": [25, 100], "canary_observe_seconds": 1, "canary_max_wait_seconds": 30,
          "canary_min_predictions": 60}  # fmt: skip


@pytest.fixture(scope="module")
def served(bikes, openbao, tmp_path_factory):
    from pipelines.features.store import materialize
    from serving.auth import create_key
    from serving.local import wait_ready
    from tests.e2e.conftest import serve

    settings, folder, outcome, registry = bikes
    settings = settings.model_copy(update=CANARY)
    materialize(settings, SPEC, dt.datetime.combine(SERVED_DAY, dt.time(), SPEC.tz))
    key = create_key(openbao.root, "fleet-team", ["predict:bike_rentals", "admin"])
    with serve(settings, openbao, tmp_path_factory.mktemp("bikes-svc")) as base:
        status = wait_ready(base)
        yield settings, registry, base, key, status


def test_the_model_service_serves_the_regressor_at_its_own_route(served, openbao):
    import json

    import httpx

    from serving import predictions
    from serving.model import load_model
    from serving.replay import day_requests, replay
    from tests.e2e.conftest import auth

    settings, registry, base, key, status = served
    champion = registry.alias(NAME, "champion")["version"]
    assert status["usecases"][NAME]["variants"] == [{"name": "champion", "version": champion, "weight": 100.0}]
    assert not status["usecases"]["flight_delay"]["ready"]  # the same deployment; no flights model here
    report = replay(settings, SPEC, SERVED_DAY, base, key)
    assert (report.sent, report.answered, report.failed) == (24, 24, 0)
    hours = day_requests(settings, SPEC, SERVED_DAY)
    answer = httpx.post(f"{base}/bike_rentals/predict", json={"hours": hours[8:10]}, headers=auth(key)).json()
    assert [sorted(p) for p in answer["predictions"]] == [
        ["decision", "hour_id", "model_version", "prediction", "variant"]
    ] * 2
    assert {p["decision"] for p in answer["predictions"]} == {"model"}  # bike hours have no data subject
    assert all(p["prediction"] > 0 for p in answer["predictions"])
    log = predictions.read(settings, SPEC)
    row = log[log.request_id == answer["request_id"]].iloc[0]
    assert row["hour_id"] == "2011-05-13T08" and row["hour_start"] == pd.Timestamp(2011, 5, 13, 8)
    from pipelines.security.audit import audit_ledger
    from pipelines.security.store import artifact_store

    ledger = audit_ledger(settings)
    model = load_model(settings, SPEC, artifact_store(settings, ledger), openbao.role("serving"), ledger)
    x = np.array([[row[f] for f in model.features]], dtype=np.float32)
    assert model.predict(x)[0] == pytest.approx(answer["predictions"][0]["prediction"], rel=1e-6)
    # the request of the README's guide (Add a use case), as written there
    import re

    guide = (REPO_ROOT / "README.md").read_text()
    body = json.loads(re.search(r"/bike_rentals/predict .*?-d '(\{.*?\})'", guide, re.S).group(1))
    answer = httpx.post(f"{base}/bike_rentals/predict", json=body, headers=auth(key)).json()
    assert answer["predictions"][0]["hour_id"] == "2011-05-13T08" and answer["predictions"][0]["prediction"] > 0
    bad = {**hours[0], "weather_code": 9}
    refused = httpx.post(f"{base}/bike_rentals/predict", json={"hours": [bad]}, headers=auth(key))
    assert refused.status_code == 400 and "weather_code" in refused.text
    assert httpx.post(f"{base}/predict", json={"flights": []}, headers=auth(key)).status_code == 403


def test_a_challenger_regressor_walks_the_canary_and_is_promoted(served, bikes):
    from pipelines.deploy.canary import Canary, CanaryPolicy
    from serving import predictions
    from serving.client import ServiceClient
    from serving.replay import ReplayLoop, day_requests

    settings, registry, base, key, _ = served
    champion = registry.alias(NAME, "champion")["version"]
    folder = training.prepare_run(settings, NAME, LAST, "bikes-2")  # the same window and seed: a tie passes
    training.train_candidate(settings, folder, "xgboost")
    challenger = training.gate_and_register(settings, folder, ["xgboost"])["challenger"]
    endpoint, policy = ServiceClient(base, key).endpoint(SPEC), CanaryPolicy.from_settings(settings)
    canary = Canary(registry, SPEC, endpoint, lambda since: predictions.read(settings, SPEC, since), policy)
    # two weeks of hours as traffic: a sticky split of one day's 24 hours would give the variants different hours
    hours = [h for n in range(14) for h in day_requests(settings, SPEC, SERVED_DAY - dt.timedelta(days=n))]
    with ReplayLoop(base, key, SPEC, hours, batch=24) as traffic:
        canary.smoke(challenger, hours[:24])
        outcome = canary.walk(challenger)
    assert outcome.promoted, outcome.render()
    assert set(traffic.statuses) == {200} and traffic.items_answered() > 80
    assert registry.alias(NAME, "champion")["version"] == challenger != champion
    assert outcome.steps[0].challenger["mean_prediction"] > 1  # riders, not a probability


def test_the_served_day_is_monitored_on_its_landed_riders(served):
    import json

    from pipelines.orchestration import monitoring
    from serving.replay import replay

    settings, _, base, key, _ = served
    assert replay(settings, SPEC, SERVED_DAY, base, key).failed == 0  # the day, served by today's champion
    build_days(settings, SPEC, SERVED_DAY, SERVED_DAY)  # its riders land after it
    folder = monitoring.prepare_window(settings, SPEC, SERVED_DAY)
    with monitoring.DriftDetectors(settings) as detectors:
        drift = detectors.run(folder)
    outcome = monitoring.assess_and_decide(settings, folder, SERVED_DAY)
    performance = outcome["performance"]
    assert performance["rows"] == 24 and performance["rmse"] > 0 and "roc_auc" not in performance
    assert performance["loss"] == pytest.approx(performance["rmse"] ** 2)
    assert set(performance["slices"]) <= {f"weather_code={c}" for c in (1, 2, 3, 4)}
    assert set(drift["categorical"]) == {"weather_code"} and drift["rows"]["current"] == 24
    assert outcome["variants"]["variants"]["champion"]["rows"] == 24  # the A/B report: every variant, labelled
    assert not outcome["decision"]["retrain"]  # one day is never enough (consecutive_days 3)
    page = (Path(folder) / "report.html").read_text()
    assert "RMSE" in page and "<svg" in page
    assert json.loads((Path(folder) / "assessment.json").read_text())["model"] == NAME
