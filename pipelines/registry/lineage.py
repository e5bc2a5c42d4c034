"""Lineage of a model version: the exact data, validations, transforms, features and code it came from."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

from pipelines.ingest.landing import manifest_path, partition_path, reference_path
from pipelines.settings import REPO_ROOT, Settings
from pipelines.training.dataset import TrainingWindow, feature_definitions_hash
from pipelines.usecases.spec import UseCase


def _sha256(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


def _landed(path: Path) -> dict:
    manifest = manifest_path(path)
    if not manifest.exists():
        return {"path": str(path), "missing": True}
    landed = json.loads(manifest.read_text())
    return {"path": str(path), "rows": landed["rows"], "sha256": landed["sha256"], "source": landed.get("source")}


def _validation(settings: Settings, table: str, label: str) -> dict:
    path = settings.validation_dir / "results" / table / f"{label}.json"
    if not path.exists():
        return {"table": table, "partition": label, "missing": True}
    result = json.loads(path.read_text())
    run = json.loads(result["run_id"]) if isinstance(result.get("run_id"), str) else result.get("run_id")
    return {"table": table, "partition": label, "success": result["success"], "run": run, "sha256": _sha256(path)}


def _git() -> dict:
    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit or "unknown (not a git checkout)", "dirty": bool(status) if status is not None else None}


def lineage(settings: Settings, usecase: UseCase, window: TrainingWindow, features: list[str]) -> dict:
    """The landed partitions, validations, dbt models, features and code behind a training window."""
    partitioned, reference, feature_service = (usecase.sources.partitioned, usecase.sources.reference,
                                               usecase.features.feature_service)  # fmt: skip
    days = [d.isoformat() for d in window.days]
    dbt_manifest = settings.data_root / "dbt" / "target" / "manifest.json"
    models = []
    if dbt_manifest.exists():
        nodes = json.loads(dbt_manifest.read_text())["nodes"]
        models = sorted(k for k, node in nodes.items() if node["resource_type"] == "model")
    return {
        "raw_partitions": {
            table: {day: _landed(partition_path(settings, table, window.days[i])) for i, day in enumerate(days)}
            for table in partitioned
        },
        "raw_reference": {table: _landed(reference_path(settings, table)) for table in reference},
        "validation": [_validation(settings, t, d) for t in partitioned for d in days]
        + [_validation(settings, t, "reference") for t in reference],
        "dbt": {"manifest_sha256": _sha256(dbt_manifest), "models": models, "target": settings.warehouse_target},
        "feature_service": {
            "name": feature_service,
            "features": features,
            "definitions_sha256": feature_definitions_hash(settings, usecase),
        },
        "code": _git(),
        "requirements": {name: _sha256(REPO_ROOT / name) for name in ("requirements.txt", "requirements-drift.txt")},
    }
