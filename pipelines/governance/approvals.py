"""Four-eyes approval of a release (the spec's `deploy.approval: required`).

Before a candidate takes any traffic the deploy DAG asks a person through Airflow's human-in-the-loop
operator (pipelines/orchestration/approval.py): this module writes what that person reads (the candidate's
gate report, its metrics beside the champion's on the same holdout, its lineage), says who may not answer
(whoever started the training run that registered it, and whoever started its release: separation of
duties), and keeps the trail: `approval.requested`, then `approval.approved`, `approval.rejected` or
`approval.timed_out`, each naming the person, in the audit ledger. `pending` lists the requests the ledger
has not seen answered (`platform models approvals`).
"""

from __future__ import annotations

from dataclasses import dataclass

from pipelines.security.audit import audit_ledger
from pipelines.settings import Settings

APPROVER_ROLE = "Approver"
ANSWERS = ("approval.approved", "approval.rejected", "approval.timed_out")
SHOWN_METRICS = {"binary_classification": ("roc_auc", "pr_auc", "log_loss", "log_loss_skill", "brier"),
                 "regression": ("rmse", "mae", "bias", "r2", "rmse_vs_baseline")}  # fmt: skip


@dataclass(frozen=True)
class ApprovalRequest:
    model: str
    alias: str  # what it would become: champion or challenger
    version: int
    run: str  # <dag id>/<run id> of the release waiting for the answer
    subject: str  # the headline an Approver sees
    body: str  # Markdown: gate report, metrics beside the champion's, lineage
    excluded: list[str]  # who may not answer

    @property
    def key(self) -> str:
        return f"{self.model}/v{self.version}"


def approval_request(settings: Settings, model: str, alias: str, version: int, run: str,
                     started_by: str | None) -> ApprovalRequest:  # fmt: skip
    """What the Approver is asked about `version` of `model` (verified manifest), and who may not answer it."""
    from pipelines.registry.registry import Registry
    from pipelines.security.store import artifact_store
    from pipelines.security.vault import Vault
    from pipelines.usecases.spec import resolve_usecase

    ledger = audit_ledger(settings)
    registry = Registry(artifact_store(settings, ledger), Vault.from_settings(settings), ledger)
    manifest = registry.manifest(model, version)
    usecase = resolve_usecase(settings, model)
    excluded = sorted({who for who in (manifest.get("registered_by"), started_by) if who})
    subject = f"Release {model} v{version} ({manifest['family']}) as {alias}?"
    return ApprovalRequest(model, alias, version, run, subject, _body(manifest, usecase, alias, excluded), excluded)


def _body(manifest: dict, usecase, alias: str, excluded: list[str]) -> str:
    metrics, gate, lineage = manifest["metrics"], manifest["gate"], manifest["lineage"]
    champion = metrics.get("champion_on_same_holdout") or {}
    rows = ["| metric | this candidate | champion (same holdout) | baseline |", "|---|---|---|---|"]
    for name in SHOWN_METRICS[usecase.task]:
        rows.append(f"| {name} | {_number(metrics['holdout'].get(name))} | {_number(champion.get(name))} | "
                    f"{_number((metrics.get('baseline') or {}).get(name))} |")  # fmt: skip
    window, raw = manifest["training"]["window"], lineage.get("raw_partitions", {})
    partitions = sum(len(days) for days in raw.values()) if isinstance(raw, dict) else len(raw)
    feature_service = lineage.get("feature_service", {})
    lines = [
        f"**{usecase.title}**, {manifest['family']} v{manifest['version']}, registered {manifest['registered_at']} "
        f"by {manifest.get('registered_by') or 'a scheduled run'}; to become **{alias}**.",
        "",
        f"Gate: **{'passed' if gate['passed'] else 'rejected'}**"
        + ("" if not gate.get("reasons") else ": " + "; ".join(gate["reasons"])),
        "",
        *rows,
        "",
        f"Lineage: fitted on {window['train_start']}..{window['train_end']}, judged on the days to "
        f"{window['holdout_end']}; FeatureService {feature_service.get('name')} "
        f"({str(feature_service.get('definitions_sha256', ''))[:12]}); {partitions} raw partitions; dbt manifest "
        f"{str(lineage.get('dbt', {}).get('manifest_sha256', ''))[:12]}; commit "
        f"{str(lineage.get('code', {}).get('commit', ''))[:12]}. Evaluation report: {manifest.get('report_html')}",
        "",
        "Separation of duties: only the Approver role answers"
        + (f", and not {', '.join(excluded)} (started its training or its release)." if excluded else "."),
    ]
    return "\n".join(lines)


def _number(value) -> str:
    return "-" if value is None else f"{value:.4f}" if isinstance(value, int | float) else str(value)


def record_request(settings: Settings, request: ApprovalRequest, timeout_s: float) -> None:
    audit_ledger(settings).append("approval.requested", request.key, {
        "alias": request.alias, "run": request.run, "excluded": request.excluded, "timeout_s": timeout_s})  # fmt: skip


def record_answer(settings: Settings, request: ApprovalRequest, action: str, by: str | None, at: str | None) -> None:
    """`action`: approval.approved, approval.rejected or approval.timed_out; `by`: the Airflow user who answered."""
    audit_ledger(settings).append(action, request.key, {"alias": request.alias, "run": request.run, "by": by,
                                                        "at": at}, actor=by or "")  # fmt: skip


def pending(settings: Settings) -> list[dict]:
    """The approval requests of every use case that the ledger has seen asked and not answered, oldest first."""
    asked: dict[tuple[str, str], dict] = {}
    for record in audit_ledger(settings).records():
        if not record.action.startswith("approval."):
            continue
        key = (record.subject, record.details.get("run", ""))
        if record.action == "approval.requested":
            asked[key] = {"model": record.subject, "requested_at": record.time, **record.details}
        elif record.action in ANSWERS:
            asked.pop(key, None)
    return list(asked.values())
