"""Retention: what the spec's `retention` says may be kept, enforced for one day by the housekeeping DAG.

Counted back from the run's day (the data's own clock, as every DAG here: no wall-clock `now`): raw partitions
older than `raw_days`, the prediction log's answers to items older than `prediction_log_days`, and the model
versions beyond the newest `registry_versions` are deleted. Never what a live model needs: a raw partition in
the lineage of the current champion or challenger stays (the run says so), and neither version is deleted.
Every deletion, and every keeping against the rule, is a ledger record (`retention.deleted`, `retention.kept`).
"""

from __future__ import annotations

import datetime as dt
import shutil
from dataclasses import dataclass, field

from pipelines.settings import Settings
from pipelines.usecases.spec import UseCase


@dataclass
class Housekeeping:
    usecase: str
    day: str
    deleted: list[str] = field(default_factory=list)  # what went, one line each
    kept: list[str] = field(default_factory=list)  # what the rule would delete but a live model needs, and why

    def render(self) -> str:
        lines = [f"{self.usecase} housekeeping for {self.day}: {len(self.deleted)} deleted, {len(self.kept)} kept"]
        lines += [f"  deleted {what}" for what in self.deleted] + [f"  KEPT {what}" for what in self.kept]
        return "\n".join(lines)


def housekeep(settings: Settings, usecase: UseCase, day: dt.date) -> Housekeeping:
    """Delete what the use case's retention lets go as of `day` (see the module)."""
    from pipelines.registry.registry import Registry
    from pipelines.security.audit import audit_ledger
    from pipelines.security.store import artifact_store
    from pipelines.security.vault import Vault

    ledger = audit_ledger(settings)
    registry = Registry(artifact_store(settings, ledger), Vault.from_settings(settings), ledger)
    live = _live_versions(registry, usecase.name)
    done = Housekeeping(usecase.name, day.isoformat())
    rule = usecase.retention
    if rule.raw_days is not None:
        _raw(settings, usecase, registry, live, day - dt.timedelta(days=rule.raw_days), done)
    if rule.prediction_log_days is not None:
        _predictions(settings, usecase, day - dt.timedelta(days=rule.prediction_log_days), done)
    if rule.registry_versions is not None:
        _versions(registry, usecase.name, live, rule.registry_versions, done)
    for what in done.deleted:
        ledger.append("retention.deleted", usecase.name, {"day": done.day, "what": what})
    for what in done.kept:
        ledger.append("retention.kept", usecase.name, {"day": done.day, "what": what})
    return done


def _live_versions(registry, model: str) -> dict[int, str]:
    """{version: alias} of the champion and challenger."""
    live = {}
    for alias in ("champion", "challenger"):
        current = registry.alias(model, alias)
        if current:
            live[current["version"]] = alias
    return live


def _raw(settings: Settings, usecase: UseCase, registry, live: dict[int, str], cutoff: dt.date,
         done: Housekeeping) -> None:  # fmt: skip
    needed: dict[tuple[str, str], str] = {}
    for version, alias in live.items():
        for table, days in registry.manifest(usecase.name, version)["lineage"]["raw_partitions"].items():
            for d in days:
                needed.setdefault((table, d), f"{alias} v{version}")
    for table in usecase.sources.partitioned:
        for folder in sorted((settings.raw_dir / table).glob("date=*")):
            d = folder.name.removeprefix("date=")
            if dt.date.fromisoformat(d) >= cutoff:
                continue
            if (table, d) in needed:
                done.kept.append(f"raw {table} {d}: in the lineage of the live {needed[table, d]}")
                continue
            shutil.rmtree(folder)
            done.deleted.append(f"raw {table} {d}")


def _predictions(settings: Settings, usecase: UseCase, cutoff: dt.date, done: Housekeeping) -> None:
    from serving.predictions import prediction_log

    removed = prediction_log(settings, usecase).delete_before(cutoff)
    if removed:
        done.deleted.append(f"{removed} logged answers to items before {cutoff}")


def _versions(registry, model: str, live: dict[int, str], keep: int, done: Housekeeping) -> None:
    versions = registry.versions(model)
    for version in versions[: max(0, len(versions) - keep)]:
        if version in live:
            done.kept.append(f"{model} v{version}: the live {live[version]}")
            continue
        registry.delete_version(model, version)
        done.deleted.append(f"{model} v{version}")
