"""The deploy DAG's steps as plain functions: build the Bento, then release the version the training
DAG moved (a first champion goes live at once; a challenger is smoke-tested in shadow and walked
through the canary steps, promoted or rolled back without a person)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from pipelines.deploy.canary import Canary, CanaryPolicy
from pipelines.errors import CanaryRolledBack, DeployFailed
from pipelines.orchestration.training import newest_landed_day
from pipelines.registry.registry import Registry
from pipelines.security.audit import audit_ledger
from pipelines.security.store import artifact_store
from pipelines.security.vault import Vault, evaluation_vault
from pipelines.settings import REPO_ROOT, Settings
from pipelines.usecases.spec import UseCase, resolve_usecase

SMOKE_ITEMS = 50


def build_bento(settings: Settings) -> str:
    """`bentoml build` of the model service (code and dependencies; models load from the registry)."""
    env = {**os.environ, "BENTOML_HOME": str(settings.data_root / "bentoml"), "BENTOML_DO_NOT_TRACK": "True"}
    result = subprocess.run(  # nosec B603 # fixed argument list
        [str(Path(sys.executable).with_name("bentoml")), "build", "-o", "tag"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    tags = [line.removeprefix("__tag__:") for line in result.stdout.splitlines() if line.startswith("__tag__:")]
    if result.returncode != 0 or not tags:
        raise DeployFailed(f"bentoml build failed ({result.returncode}): {(result.stderr or result.stdout)[-2000:]}")
    audit_ledger(settings).append("deployment.bento_built", tags[0], {"bentofile": "bentofile.yaml"})
    return tags[0]


def release_target(conf: dict | None, events: list[dict]) -> tuple[str, int] | None:
    """Which version to release, and how: the run's conf {"version": n, "alias": ...}, else the newest
    model event's {"champion": n} (a first champion) or {"challenger": n}; None when nothing moved."""
    if conf and conf.get("version"):
        return str(conf.get("alias") or "challenger"), int(conf["version"])
    for extra in reversed(events):
        for alias in ("challenger", "champion"):
            if extra.get(alias):
                return alias, int(extra[alias])
    return None


def canary(settings: Settings, usecase: UseCase) -> Canary:
    from serving import predictions
    from serving.client import ServiceClient

    ledger = audit_ledger(settings)
    registry = Registry(artifact_store(settings, ledger), evaluation_vault(settings), ledger)
    service = ServiceClient.from_connection(settings, Vault.from_settings(settings)).endpoint(usecase)
    policy = CanaryPolicy.from_settings(settings)
    return Canary(registry, usecase, service, lambda since: predictions.read(settings, usecase, since), policy)


def release(settings: Settings, model: str, alias: str, version: int, dag_run: str | None = None) -> dict:
    """Put `version` of use case `model` live. Raises DeployFailed (smoke test) or CanaryRolledBack (canary)
    after the champion-only plan is back in place, so the run shows red and consumers never noticed; either
    opens its incident, for the Airflow run `dag_run` (`<dag id>/<run id>`) when it comes from one."""
    from serving.replay import day_requests

    usecase = resolve_usecase(settings, model)
    controller = canary(settings, usecase)
    items = day_requests(settings, usecase, newest_landed_day(settings, usecase))[:SMOKE_ITEMS]
    if alias == "champion":  # the first model: nothing to compare against
        controller.serve_champion_only(version, "first champion")
        answer = controller.service.predict(items)
        if {p["model_version"] for p in answer["predictions"]} != {version}:
            raise DeployFailed(f"the service answered with {answer['predictions'][:1]}, not v{version}")
        return {"model": model, "champion": version, "promoted": True, "steps": []}
    from pipelines.alerting.incidents import platform_event

    cause = f"rollback:{model}/v{version}"
    try:
        controller.smoke(version, items)
    except DeployFailed as exc:
        platform_event(settings, "CanaryRolledBack", cause, model, f"v{version} not released: {exc}", dag_run)
        raise
    outcome = controller.walk(version)
    print(outcome.render())
    path = deployment_report(settings, model, version)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(outcome.as_dict(), indent=2))
    if not outcome.promoted:
        reasons = "; ".join(outcome.reasons)
        platform_event(settings, "CanaryRolledBack", cause, model, f"v{version} rolled back to the champion: {reasons}",
                       dag_run)  # fmt: skip
        raise CanaryRolledBack(outcome.render())
    return outcome.as_dict()


def deployment_report(settings: Settings, model: str, version: int) -> Path:
    """Where a challenger's canary report (CanaryOutcome) is written."""
    return settings.data_root / "deployments" / f"{model}-v{version}.json"
