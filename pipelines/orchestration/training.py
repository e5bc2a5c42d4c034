"""The training DAG's steps as plain functions: window → dataset → one candidate per family
(train, export, evaluate, seal) → gate against the champion and register every candidate."""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from pipelines.errors import NotEnoughData, PlatformError
from pipelines.evaluation.gate import GatePolicy, decide
from pipelines.evaluation.metrics import behavioural_checks, naive_baseline, scores, slice_scores
from pipelines.evaluation.report import residual_points, roc_points, write_report
from pipelines.export.onnx import OnnxScorer, latency_ms, parity
from pipelines.ingest.landing import manifest_path, partition_path
from pipelines.monitoring.reference import build_reference
from pipelines.registry.lineage import lineage
from pipelines.registry.registry import Registry
from pipelines.security.artifacts import SealedArtifacts
from pipelines.security.audit import audit_ledger
from pipelines.security.store import artifact_store
from pipelines.security.vault import Vault, evaluation_vault
from pipelines.settings import Settings
from pipelines.training.dataset import TrainingData, TrainingWindow, build_dataset
from pipelines.training.trainers import TRAINERS, TrainedModel, resolve_device, train_xgboost_dask
from pipelines.usecases.spec import HIGHER_IS_BETTER, UseCase, read_snapshot, resolve_usecase, write_snapshot

NATIVE_FILE = {"xgboost": "model.ubj", "mlp": "model.pt"}
REFERENCE_FILE = "reference.parquet"  # the drift reference sample (pipelines/monitoring/reference.py)
HOLDOUT_PREDICTIONS = "holdout_predictions.parquet"  # a candidate's answers on the holdout rows
PARITY_ROWS = 2000


def newest_landed_day(settings: Settings, usecase: UseCase) -> dt.date:
    """The newest day landed of the spec's first day-partitioned table (the one its labels come from)."""
    folder = settings.raw_dir / usecase.sources.partitioned[0]
    days = sorted(
        p.name.removeprefix("date=") for p in folder.glob("date=*") if manifest_path(p / "part.parquet").exists()
    )
    if not days:
        raise NotEnoughData(f"nothing has been landed under {folder}; run {usecase.dag_id('ingest')} first")
    return dt.date.fromisoformat(days[-1])


def resolve_window(settings: Settings, usecase: UseCase, last_day: dt.date | None = None) -> TrainingWindow:
    """The spec's window ending at `last_day` (from the triggering event or the run's conf), else the newest
    landed day."""
    lengths = usecase.training.windows
    window = TrainingWindow.ending(last_day or newest_landed_day(settings, usecase), lengths.train_days,
                                   lengths.validation_days, lengths.holdout_days)  # fmt: skip
    table = usecase.sources.partitioned[0]
    missing = [d for d in window.days if not manifest_path(partition_path(settings, table, d)).exists()]
    if missing:
        raise NotEnoughData(
            f"the training window {window.train_start}..{window.holdout_end} needs {table} of "
            f"{', '.join(map(str, missing))}, which were never landed; ingest them or shorten the window"
        )
    return window


def run_folder(settings: Settings, run_key: str) -> Path:
    return settings.data_root / "training" / run_key.replace(":", "-").replace("+", "_")


def prepare_dataset(settings: Settings, usecase: UseCase, window: TrainingWindow, run_key: str) -> str:
    """The run's dataset and the spec it runs under, in the run's folder (the later tasks read both there)."""
    folder = run_folder(settings, run_key)
    build_dataset(settings, usecase, window).save(folder)
    write_snapshot(usecase, folder)
    return str(folder)


def prepare_run(settings: Settings, name: str, last_day: dt.date | None, run_key: str) -> str:
    """A training run of use case `name` (its spec as the settings resolve it) on the window ending at
    `last_day`: the dataset and the spec frozen in the run's folder; returns the folder."""
    usecase = resolve_usecase(settings, name)
    return prepare_dataset(settings, usecase, resolve_window(settings, usecase, last_day), run_key)


def evaluate_predictions(family: str, predict, data: TrainingData, usecase: UseCase) -> tuple[dict, dict]:
    """Holdout scores, the naive baseline, slices and behavioural checks of `predict`: what the gate reads."""
    frame = data.frame.reset_index(drop=True)
    holdout = frame[frame["split"] == "holdout"].reset_index(drop=True)
    p = predict(holdout[data.features].to_numpy(dtype=np.float32))
    y = holdout[data.label].to_numpy()
    baseline = naive_baseline(frame, data.label, usecase.gate.baseline)[frame["split"].to_numpy() == "holdout"]
    evaluation = {
        "family": family,
        "task": data.task,
        "window": data.window.as_dict(),
        "holdout": scores(data.task, y, p),
        "baseline": {k: v for k, v in scores(data.task, y, baseline).items() if k != "calibration"},
        "slices": slice_scores(data.task, holdout, data.label, p, usecase.gate.slices),
        "behaviour": behavioural_checks(predict, holdout, data.features, usecase.gate.behaviour),
    }
    if data.task == "regression":
        evaluation["holdout"]["rmse_vs_baseline"] = evaluation["holdout"]["rmse"] / evaluation["baseline"]["rmse"]
        return evaluation, {"residuals": residual_points(y, p), "baseline_residuals": residual_points(y, baseline)}
    return evaluation, {"roc": roc_points(y, p), "baseline_roc": roc_points(y, baseline)}


def evaluate_trained(trained: TrainedModel, data: TrainingData, usecase: UseCase) -> tuple[dict, dict, OnnxScorer]:
    """A trained model judged as serving will run it, through ONNX Runtime, plus ONNX parity and latency."""
    scorer = OnnxScorer(trained.onnx, trained.onnx_output)
    x_ref = data.split("holdout")[data.features].to_numpy(dtype=np.float32)[:PARITY_ROWS]
    evaluation, plots = evaluate_predictions(trained.family, scorer.predict, data, usecase)
    evaluation["onnx"] = {
        "parity": parity(scorer, trained.predict_native(x_ref), x_ref),
        "latency_ms": latency_ms(scorer, x_ref[0]),
        "reference_rows": len(x_ref),
    }
    evaluation["threshold"] = trained.threshold
    return evaluation, plots, scorer


def training_device(settings: Settings, family: str, rows: int) -> tuple[str, str]:
    """The device of a fit, and why: PLATFORM_DEVICE when it names one; under `auto` the CPU without CUDA, the MLP
    on CUDA when present, and XGBoost on CUDA only from the row count where this machine's calibration shows its
    fit faster there (pipelines/compute/planner.py)."""
    device = resolve_device(settings.device)
    if settings.device != "auto" or device != "cuda" or family != "xgboost":
        return device, f"PLATFORM_DEVICE={settings.device}: {device}"
    from pipelines.compute.planner import current_calibration, plan_training

    return plan_training(current_calibration(settings), rows)


def _train(settings: Settings, family: str, params: dict, data: TrainingData, device: str) -> TrainedModel:
    """In the task's process, or XGBoost on the Dask cluster at PLATFORM_DASK_SCHEDULER."""
    if family != "xgboost" or not settings.dask_scheduler:
        return TRAINERS[family](data, params, seed=settings.seed, device=device)
    from distributed import Client

    try:
        client = Client(settings.dask_scheduler, timeout="10s")
    except (OSError, TimeoutError) as error:
        raise PlatformError(
            f"no Dask scheduler answers at {settings.dask_scheduler} ({error}); start the cluster or unset "
            "PLATFORM_DASK_SCHEDULER to train in the task"
        ) from error
    with client:
        return train_xgboost_dask(data, params, seed=settings.seed, client=client)


def train_candidate(settings: Settings, folder: str, family: str) -> dict:
    """Train one family, export to ONNX, evaluate on the holdout, seal both files; write candidate.json."""
    usecase = read_snapshot(Path(folder))
    if family not in usecase.training.families:
        raise PlatformError(
            f"model family {family!r} is not in {usecase.name}'s spec: {list(usecase.training.families)}"
        )
    data = TrainingData.load(Path(folder))
    started = time.monotonic()
    device, why = training_device(settings, family, len(data.split("train")))
    print(f"{family} trains on {device}: {why}")
    trained = _train(settings, family, usecase.training.hyperparameters(family), data, device)
    device = trained.device
    evaluation, plots, scorer = evaluate_trained(trained, data, usecase)
    out = Path(folder) / family
    _, html_path = write_report(out, evaluation, plots)
    reference, monitoring = build_reference(data, scorer.predict, settings.seed, usecase)  # drift's baseline
    ledger = audit_ledger(settings)
    sealed = SealedArtifacts(artifact_store(settings, ledger), Vault.from_settings(settings), ledger)
    files = {}
    for name, blob, fmt in (
        ("model.onnx", trained.onnx, "onnx"),
        (NATIVE_FILE[family], trained.native, trained.native_format),
        (REFERENCE_FILE, _parquet_bytes(reference), "parquet"),
    ):
        files[name] = {"sha256": sealed.put(blob, name=f"{family}/{name}"), "size": len(blob), "format": fmt}
    seconds = time.monotonic() - started
    rate = settings.cost_per_hour_gpu if device == "cuda" else settings.cost_per_hour_cpu
    candidate = {
        "family": family,
        "files": files,
        "evaluation": evaluation,
        "report_html": str(html_path),
        "onnx_io": {"input": "features", "output": trained.onnx_output, "features": data.features},
        "monitoring": monitoring,
        "threshold": trained.threshold,
        "params": trained.params,
        "device": device,
        "device_choice": why,
        "training_seconds": trained.seconds,
        "duration_seconds": seconds,
        "estimated_cost_usd": seconds / 3600 * rate,
    }
    holdout = data.split("holdout")
    predictions = scorer.predict(holdout[data.features].to_numpy(dtype=np.float32))
    pd.DataFrame({"entity_id": holdout[data.entity_id].astype(str).to_numpy(), "prediction": predictions}).to_parquet(
        out / HOLDOUT_PREDICTIONS, index=False
    )  # the gate compares them with the champion's on the same rows
    (out / "candidate.json").write_text(json.dumps(candidate, indent=2, default=str))
    primary = usecase.primary_metric
    return {"family": family, primary: evaluation["holdout"][primary], "candidate": str(out / "candidate.json")}


def _parquet_bytes(frame) -> bytes:
    import io

    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


def _champion_evaluation(
    registry: Registry, usecase: UseCase, data: TrainingData
) -> tuple[int, dict, pd.Series] | None:
    """The champion's version, its evaluation on the candidates' holdout and its predictions there."""
    champion = registry.alias(usecase.name, "champion")
    if champion is None:
        return None
    version = champion["version"]
    manifest, files = registry.load_files(usecase.name, version, ["model.onnx"])
    if manifest["onnx_io"]["features"] != data.features:
        raise PlatformError(
            f"champion v{version} was trained on other features than this candidate; "
            "compare them on a FeatureService both understand"
        )
    scorer = OnnxScorer(files["model.onnx"], manifest["onnx_io"]["output"])
    evaluation, _ = evaluate_predictions(manifest["family"], scorer.predict, data, usecase)
    holdout = data.split("holdout")
    predictions = scorer.predict(holdout[data.features].to_numpy(dtype=np.float32))
    return version, evaluation, pd.Series(predictions, index=holdout[data.entity_id].astype(str).to_numpy())


def prediction_shift(folder: Path, champion: tuple[int, dict, pd.Series] | None) -> dict | None:
    """How far a candidate's holdout predictions sit from the champion's on the same rows (KS
    statistic): the shift the gate accepted, which the canary expects to see again live."""
    if champion is None:
        return None
    from scipy.stats import ks_2samp

    mine = pd.read_parquet(folder / HOLDOUT_PREDICTIONS)
    theirs = champion[2].reindex(mine["entity_id"]).to_numpy()
    statistic = ks_2samp(mine["prediction"].to_numpy(), theirs).statistic
    return {"champion": champion[0], "ks": round(float(statistic), 6), "rows": len(mine)}


def gate_and_register(settings: Settings, folder: str, families: list[str] | None = None,
                      registered_by: str | None = None) -> dict:  # fmt: skip
    """Gate every candidate (the spec's families, or `families`) against the champion on the same holdout,
    register each (passed or rejected), and move the aliases: the best passing candidate becomes champion
    if there is none, else challenger. `registered_by`: the person who started the run (an approval may not
    be theirs)."""
    usecase = read_snapshot(Path(folder))
    name = usecase.name
    data = TrainingData.load(Path(folder))
    ledger = audit_ledger(settings)
    registry = Registry(artifact_store(settings, ledger), evaluation_vault(settings), ledger)
    champion = _champion_evaluation(registry, usecase, data)
    policy = GatePolicy.of(usecase, settings)
    data_lineage = lineage(settings, usecase, data.window, data.features)
    registered = []
    for family in families or list(usecase.training.families):
        candidate = json.loads((Path(folder) / family / "candidate.json").read_text())
        evaluation = candidate["evaluation"]
        report = decide(evaluation, policy, champion[1] if champion else None, champion[0] if champion else None)
        manifest = {
            "family": family,
            "files": candidate["files"],
            "onnx_io": candidate["onnx_io"],
            "monitoring": candidate["monitoring"],
            "threshold": candidate["threshold"],
            "lineage": data_lineage,
            "training": {
                "window": data.window.as_dict(),
                "params": candidate["params"],
                "seed": settings.seed,
                "device": candidate["device"],
                "device_choice": candidate.get("device_choice", ""),
                "training_seconds": candidate["training_seconds"],
                "duration_seconds": candidate["duration_seconds"],
                "estimated_cost_usd": candidate["estimated_cost_usd"],
            },
            "metrics": {
                "holdout": evaluation["holdout"],
                "baseline": evaluation["baseline"],
                "slices": evaluation["slices"],
                "behaviour": evaluation["behaviour"],
                "onnx": evaluation["onnx"],
                "champion_on_same_holdout": champion[1]["holdout"] if champion else None,
                "prediction_shift": prediction_shift(Path(folder) / family, champion),
            },
            "gate": report.as_dict(),
            "report_html": candidate["report_html"],
            "registered_by": registered_by,
        }
        version = registry.register(name, manifest)
        ledger.append("gate.decision", f"{name}/v{version}", {"passed": report.passed, "reasons": report.reasons})
        registered.append(
            {
                "version": version,
                "family": family,
                "passed": report.passed,
                "reasons": report.reasons,
                "holdout": evaluation["holdout"],
                "baseline": evaluation["baseline"],
                "report_html": candidate["report_html"],
            }
        )
    primary = usecase.primary_metric
    sign = -1 if primary in HIGHER_IS_BETTER else 1
    passing = sorted((r for r in registered if r["passed"]), key=lambda r: sign * r["holdout"][primary])
    outcome = {"model": name, "task": usecase.task, "registered": registered,
               "champion_before": champion[0] if champion else None}  # fmt: skip
    if passing:
        best = passing[0]["version"]
        alias = "champion" if champion is None else "challenger"
        registry.promote(name, best, alias, reason=f"best candidate of {Path(folder).name} passed the gate")
        outcome[alias] = best
    (Path(folder) / "outcome.json").write_text(json.dumps(outcome, indent=2, default=str))
    return outcome


def latest_outcome(settings: Settings, window_end: dt.date) -> dict:
    """The newest training run's outcome whose window ends on `window_end`."""
    outcomes = sorted((settings.data_root / "training").glob("*/outcome.json"), key=lambda p: p.stat().st_mtime)
    for path in reversed(outcomes):
        if TrainingData.load(path.parent).window.holdout_end == window_end:
            return json.loads(path.read_text())
    raise PlatformError(f"no training run has finished for the window ending {window_end}")


# The columns of the gate summary per task: (metric, heading, width).
SUMMARY_COLUMNS = {
    "binary_classification": [("roc_auc", "ROC AUC", 8), ("pr_auc", "PR AUC", 8), ("log_loss", "log loss", 9),
                              ("log_loss_skill", "LL skill", 9), ("brier", "Brier", 8)],
    "regression": [("rmse", "RMSE", 10), ("mae", "MAE", 10), ("bias", "bias", 10), ("r2", "R²", 8)],
}  # fmt: skip


def render(outcome: dict) -> str:
    """The gate report's summary, for `make run` and the task log."""
    columns = SUMMARY_COLUMNS[outcome.get("task", "binary_classification")]
    lines = [
        f"Model {outcome['model']} (champion before: "
        f"{'v' + str(outcome['champion_before']) if outcome['champion_before'] else 'none'})"
    ]
    lines.append(f"  {'version':<10}{'family':<9}{'gate':<9}" + "".join(f"{h:>{w}}" for _, h, w in columns))
    for r in outcome["registered"]:
        h = r["holdout"]
        lines.append(
            f"  v{r['version']:<9}{r['family']:<9}{'passed' if r['passed'] else 'REJECTED':<9}"
            + "".join(f"{h[m]:>{w}.4f}" for m, _, w in columns)
        )
        lines += [f"      reason: {reason}" for reason in r["reasons"]]
        lines.append(f"      report: {r['report_html']}")
    b = outcome["registered"][0]["baseline"] if outcome["registered"] else None
    if b:
        lines.append(f"  {'baseline':<10}{'naive':<9}{'':<9}" + "".join(f"{b[m]:>{w}.4f}" for m, _, w in columns)
                     + "   (the spec's gate.baseline)")  # fmt: skip
    for alias in ("champion", "challenger"):
        if alias in outcome:
            lines.append(f"  {alias} is now v{outcome[alias]}")
    return "\n".join(lines)


def window_end(conf: dict | None, events: list[dict]) -> dt.date | None:
    """The last day of the training window: the run's conf `last_day`, else the newest day named by the
    triggering asset events (`day` from the ingest DAG, `window_end` from drift monitoring), else None."""
    if conf and conf.get("last_day"):
        try:
            return dt.date.fromisoformat(str(conf["last_day"]))
        except ValueError:
            raise PlatformError(f"conf last_day {conf['last_day']!r} is not a date; use YYYY-MM-DD") from None
    days = [dt.date.fromisoformat(e[k]) for e in events for k in ("day", "window_end") if e.get(k)]
    return max(days) if days else None
