"""The monitoring DAG's steps as plain functions, for one day of a use case's served traffic:
window (the champion's logged answers for the day's items, and its reference sample) →
drift detectors (alibi-detect, in the drift virtualenv) → live performance on the landed
outcomes → assessment and retraining decision → report."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from pipelines.errors import NotEnoughData, PlatformError
from pipelines.evaluation.metrics import row_losses, scores
from pipelines.monitoring.policy import Assessment, Decision, RetrainPolicy, assess, decide
from pipelines.orchestration.training import REFERENCE_FILE
from pipelines.registry.registry import Registry
from pipelines.security.audit import audit_ledger
from pipelines.security.store import artifact_store
from pipelines.security.vault import evaluation_vault
from pipelines.settings import REPO_ROOT, Settings
from pipelines.usecases.spec import UseCase, read_snapshot, write_snapshot


def day_folder(settings: Settings, model: str, day: dt.date) -> Path:
    return settings.data_root / "monitoring" / model / day.isoformat()


def _registry(settings: Settings) -> Registry:
    ledger = audit_ledger(settings)
    return Registry(artifact_store(settings, ledger), evaluation_vault(settings), ledger)


def day_log(settings: Settings, usecase: UseCase, day: dt.date):
    """Every answer a model gave (all variants, shadows included) for items of `day` (by their local time: a
    flight's scheduled departure, an hour's start); not the items of objecting subjects, answered human_review."""
    from serving import predictions

    log = predictions.read(settings, usecase)
    if not len(log):
        return log
    scored = log["variant"] != "human_review"
    return log[scored & (log[usecase.serving.time].dt.date == day)].reset_index(drop=True)


def served_day(settings: Settings, usecase: UseCase, day: dt.date, version: int):
    """The answers `version` gave live (not shadow, not failed) for items of `day`, one per item, the answer in
    a column named `prediction`."""
    log = day_log(settings, usecase, day)
    if not len(log):
        return log
    mine = log[
        (log["model_version"] == version) & ~log["variant"].str.startswith("shadow:") & (log["error"].fillna("") == "")
    ]
    mine = mine.sort_values("logged_at").drop_duplicates(usecase.features.entity_id).reset_index(drop=True)
    return mine.rename(columns={usecase.prediction_column: "prediction"})


def prepare_window(settings: Settings, usecase: UseCase, day: dt.date) -> str:
    """Write the champion's reference, its detector config, the day's served window and the spec to the day's folder."""
    model = usecase.name
    registry = _registry(settings)
    pointer = registry.alias(model, "champion")
    if pointer is None:
        raise NotEnoughData(f"{model} has no champion to monitor yet")
    version = pointer["version"]
    manifest = registry.manifest(model, version)
    if "monitoring" not in manifest or REFERENCE_FILE not in manifest["files"]:
        raise NotEnoughData(f"{model} v{version} was registered without a drift reference; retrain it")
    _, files = registry.load_files(model, version, [REFERENCE_FILE])
    config = manifest["monitoring"]
    current = served_day(settings, usecase, day, version)
    if len(current) == 0:
        raise NotEnoughData(f"no live answers of {model} v{version} for {usecase.serving.batch} of {day} in its "
                            "prediction log")  # fmt: skip
    folder = day_folder(settings, model, day)
    folder.mkdir(parents=True, exist_ok=True)
    write_snapshot(usecase, folder)
    (folder / "reference.parquet").write_bytes(files[REFERENCE_FILE])
    columns = list(dict.fromkeys([usecase.features.entity_id, *config["categorical"], *config["features"],
                                  "prediction"]))  # fmt: skip
    current[columns].to_parquet(folder / "current.parquet", index=False)
    (folder / "config.json").write_text(json.dumps({**config, "model": model, "version": version}, indent=2))
    return str(folder)


class DriftDetectors:
    """alibi-detect in the drift virtualenv, one subprocess for many windows (`detect --serve`):
    its import alone costs about 10 s. The DAG runs one window with @task.external_python instead."""

    def __init__(self, settings: Settings):
        self.settings = settings

    def __enter__(self) -> DriftDetectors:
        if not Path(self.settings.drift_python).exists():
            raise PlatformError(
                f"the drift virtualenv's Python {self.settings.drift_python} does not exist; "
                "create it with `make setup` or set PLATFORM_DRIFT_PYTHON"
            )
        self._stderr = tempfile.TemporaryFile(mode="w+")
        self._process = subprocess.Popen(  # nosec B603 # fixed argument list
            [str(self.settings.drift_python), "-m", "pipelines.monitoring.detect", "--serve"],
            cwd=REPO_ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr, text=True,
        )  # fmt: skip
        return self

    def run(self, folder: str, *, multivariate: bool = True) -> dict:
        """Detect on the folder's reference.parquet, current.parquet and config.json; the report (also drift.json)."""
        try:
            self._process.stdin.write(json.dumps({"folder": str(folder), "multivariate": multivariate}) + "\n")
            self._process.stdin.flush()
            line = self._process.stdout.readline()
        except BrokenPipeError:
            line = ""
        if not line:
            self._stderr.seek(0)
            raise PlatformError(
                f"the drift detectors ({self.settings.drift_python}) stopped: {self._stderr.read()[-2000:]}; "
                "rebuild the drift virtualenv with `make setup`"
            )
        answer = json.loads(line)
        if "error" in answer:
            raise PlatformError(f"drift detection failed on {folder}: {answer['error']}")
        return json.loads((Path(folder) / "drift.json").read_text())

    def __exit__(self, *exc) -> None:
        self._process.stdin.close()
        try:
            self._process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._process.kill()
        self._stderr.close()


def live_performance(usecase: UseCase, current, labels) -> dict | None:
    """The champion's served answers (`current`, its `prediction` column) scored on the landed labels, overall
    and per value of the spec's categorical monitoring columns."""
    key, label = usecase.features.entity_id, usecase.features.label.column
    joined = current.merge(labels, on=key, how="inner")
    if not len(joined):
        return None
    y, p = joined[label].to_numpy(), joined["prediction"].to_numpy(dtype=float)
    overall = {k: v for k, v in scores(usecase.task, y, p).items() if k != "calibration"}
    slices = {
        f"{column}={_category(value)}": {"rows": len(part), "label_mean": float(part[label].mean()),
                              "mean_prediction": float(part["prediction"].mean())}
        for column in usecase.monitoring.categorical for value, part in joined.groupby(column)
    }  # fmt: skip
    return {**overall, "loss": float(row_losses(usecase.task, y, p).mean()), "label_mean": float(np.mean(y)),
            "mean_prediction": float(np.mean(p)), "slices": slices}  # fmt: skip


def _category(value) -> str:
    """A category as people write it: a code logged as a float feature (1.0) reads 1."""
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def _history(settings: Settings, model: str, day: dt.date) -> list[dict]:
    root = settings.data_root / "monitoring" / model
    earlier = sorted(p for p in root.glob("*/assessment.json") if p.parent.name < day.isoformat())
    return [json.loads(p.read_text()) for p in earlier]


def assess_and_decide(settings: Settings, folder: str, day: dt.date) -> dict:
    """Assess the day against the policy and decide; write assessment.json and the HTML report; audit."""
    import pandas as pd

    from pipelines.deploy.analysis import ab_report
    from pipelines.features.store import labels as labels_of
    from pipelines.monitoring.report import write_report

    f = Path(folder)
    usecase = read_snapshot(f)
    config = json.loads((f / "config.json").read_text())
    report = json.loads((f / "drift.json").read_text())
    current = pd.read_parquet(f / "current.parquet")
    labels = labels_of(settings, usecase, day, day)
    performance = live_performance(usecase, current, labels)
    everyone = day_log(settings, usecase, day)
    variants = ab_report(usecase, everyone, labels) if len(everyone) and len(labels) else None  # shadows too
    policy = RetrainPolicy.of(usecase.monitoring.retraining)
    history = _history(settings, usecase.name, day)
    assessment = assess(day, report, config, performance, policy, [h["assessment"] for h in history], config["version"])
    requests = [h for h in history if h["decision"]["retrain"]]
    last = requests[-1] if requests else None
    in_flight = last is not None and not _registered_since(settings, usecase.name, last["requested_at"])
    decision = decide(
        assessment,
        [h["assessment"] for h in history],
        policy,
        last_request=dt.date.fromisoformat(last["assessment"]["day"]) if last else None,
        in_flight=in_flight,
    )
    outcome = {
        "model": config["model"],
        "version": config["version"],
        "assessment": assessment.as_dict(),
        "decision": decision.__dict__,
        "performance": performance,
        "variants": variants,
        "requested_at": dt.datetime.now(dt.UTC).isoformat() if decision.retrain else None,
    }
    (f / "assessment.json").write_text(json.dumps(outcome, indent=2, default=str))
    html = write_report(f, outcome, report, config)
    ledger = audit_ledger(settings)
    subject = f"{usecase.name}/v{config['version']}"
    ledger.append("monitoring.assessed", subject, {"day": day.isoformat(), "breaches": assessment.breaches,
                                                   "retrain": decision.retrain, "reason": decision.reason})  # fmt: skip
    if decision.retrain:
        ledger.append("monitoring.retrain_requested", subject, {"window_end": decision.window_end,
                                                                "reason": decision.reason})  # fmt: skip
    return {**outcome, "report_html": str(html)}


def _registered_since(settings: Settings, model: str, requested_at: str) -> bool:
    """Whether a model version was registered after the retrain request (versions only grow)."""
    registry = _registry(settings)
    versions = registry.versions(model)
    if not versions:
        return False
    newest = registry.manifest(model, versions[-1])["registered_at"]
    return dt.datetime.fromisoformat(newest) >= dt.datetime.fromisoformat(requested_at)


def render(outcome: dict) -> str:
    a, d = Assessment(**outcome["assessment"]), Decision(**outcome["decision"])
    lines = [f"Monitoring {outcome['model']} v{outcome['version']} on {a.day}: {a.rows} scored rows"]
    lines.append(
        f"  feature drift (weighted, beyond natural) {a.feature_drift:.3f}; prediction drift {a.prediction_drift:.3f}"
    )
    if a.loss_ratio is not None:
        lines.append(f"  live loss {a.loss_ratio:.2f}x the reference's; bias {a.bias:.3g}")
    lines += [f"  breach: {b}" for b in a.breaches]
    lines.append(f"  {'RETRAIN requested' if d.retrain else 'no retrain'}: {d.reason}")
    if outcome.get("report_html"):
        lines.append(f"  report: {outcome['report_html']}")
    return "\n".join(lines)
