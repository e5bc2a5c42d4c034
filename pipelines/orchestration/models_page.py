"""The Models page of the Airflow UI (served by plugins/models_page.py): the incidents not yet resolved
(and the latest resolved ones) with their runbooks, then every model's versions with their gate
decisions, aliases, the live deployment plan and its history, lineage, and the latest drift
assessments, with links to the gate and drift reports."""

from __future__ import annotations

import html
import json
from pathlib import Path

from pipelines.deploy.plan import read_plan
from pipelines.registry.registry import Registry
from pipelines.security.audit import audit_ledger
from pipelines.security.store import artifact_store
from pipelines.security.vault import Vault
from pipelines.settings import Settings

STYLE = """body{font-family:sans-serif;margin:1.5em;max-width:80em}td,th{padding:3px 8px;text-align:left;
vertical-align:top}table{border-collapse:collapse;margin-bottom:1.5em}tr:nth-child(even){background:#f4f4f4}
.passed{color:#2a7a2a}.rejected{color:#b00}.alias{background:#ffe9a8;padding:0 4px;border-radius:3px}
code{font-size:90%}.page{color:#b00;font-weight:bold}.ticket{color:#a60}"""
RESOLVED_SHOWN = 10


def registry(settings: Settings) -> Registry:
    ledger = audit_ledger(settings)
    return Registry(artifact_store(settings, ledger), Vault.from_settings(settings), ledger)


def report_roots(settings: Settings) -> list[Path]:
    """The only folders the page links reports from."""
    return [settings.data_root / "training", settings.data_root / "monitoring"]


def _link(settings: Settings, path: str | None, text: str) -> str:
    if not path:
        return ""
    target = Path(path)
    for root in report_roots(settings):
        if target.is_relative_to(root):
            return f'<a href="reports/{html.escape(str(target.relative_to(settings.data_root)))}">{text}</a>'
    return ""


def _esc(value) -> str:
    return html.escape(str(value))


def _variants(variants: list[dict]) -> str:
    return ", ".join(f"{_esc(v['name'])} v{v['version']} {v['weight']:g}%" for v in variants)


def _model_section(settings: Settings, reg: Registry, model: str) -> str:
    aliases = {a: (reg.alias(model, a) or {}).get("version") for a in ("champion", "challenger")}
    plan, _ = read_plan(reg, model)
    parts = [f"<h2>{_esc(model)}</h2>", f'<p><a href="compliance/{_esc(model)}">Compliance evidence</a> (residency, '
             "lineage, decrypts, decisions, model cards; verified as it opens)</p>"]  # fmt: skip
    if plan:
        live = ", ".join(f"{_esc(v.name)} v{v.version} {v.weight:g}%" for v in plan.variants)
        shadow = f"; shadow {_esc(plan.shadow.name)} v{plan.shadow.version}" if plan.shadow else ""
        parts.append(f"<p><b>Live deployment plan</b>: {live}{shadow}</p>")
        history = "".join(
            f"<tr><td>{_variants(h['variants'])}</td><td>{_esc(h.get('reason', ''))}</td></tr>"
            for h in reversed(plan.history[-8:])
        )
        parts.append(f"<table><tr><th>plan (newest first)</th><th>why</th></tr>{history}</table>")
    else:
        parts.append("<p>No deployment plan: the service answers with the champion alone.</p>")
    rows = []
    for version in reversed(reg.versions(model)):
        m = reg.manifest(model, version)
        gate = m["gate"]
        holdout = m["metrics"]["holdout"]
        lineage = m["lineage"]
        badges = "".join(f' <span class="alias">{a}</span>' for a, v in aliases.items() if v == version)
        reasons = "<br>".join(_esc(r) for r in gate.get("reasons", []))
        window = m["training"]["window"]
        rows.append(
            f"<tr><td>v{version}{badges}</td><td>{_esc(m['family'])}</td><td>{_esc(m['registered_at'])}</td>"
            f"<td class={'passed' if gate['passed'] else 'rejected'}>{'passed' if gate['passed'] else 'rejected'}"
            f"<br>{reasons}</td><td>{holdout['roc_auc']:.4f}</td><td>{holdout['log_loss']:.4f}</td>"
            f"<td>{_esc(window['train_start'])} .. {_esc(window['holdout_end'])}</td>"
            f"<td>FeatureService {_esc(lineage['feature_service']['name'])} "
            f"<code>{_esc(lineage['feature_service']['definitions_sha256'][:12])}</code><br>"
            f"git <code>{_esc(str(lineage.get('git', {}).get('commit', ''))[:10])}</code></td>"
            f"<td>{_link(settings, m.get('report_html'), 'gate report')} "
            f'<a href="lineage/{_esc(model)}/{version}">lineage</a></td></tr>'
        )
    parts.append(
        "<table><tr><th>version</th><th>family</th><th>registered</th><th>gate</th><th>ROC AUC</th>"
        "<th>log loss</th><th>window</th><th>lineage</th><th>reports</th></tr>" + "".join(rows) + "</table>"
    )
    drift = sorted((settings.data_root / "monitoring" / model).glob("*/assessment.json"), reverse=True)[:14]
    if drift:
        items = []
        for path in drift:
            outcome = json.loads(path.read_text())
            a, d = outcome["assessment"], outcome["decision"]
            items.append(
                f"<tr><td>{_esc(a['day'])}</td><td>v{outcome['version']}</td><td>{a['rows']}</td>"
                f"<td>{a['feature_drift']:.3f}</td><td>{a['prediction_drift']:.3f}</td>"
                f"<td>{'<b>retrain</b>: ' if d['retrain'] else ''}{_esc(d['reason'])}</td>"
                f"<td>{_link(settings, str(path.with_name('report.html')), 'drift report')}</td></tr>"
            )
        parts.append(
            "<h3>Latest drift assessments</h3><table><tr><th>day</th><th>model</th><th>flights</th>"
            "<th>feature drift</th><th>prediction drift</th><th>decision</th><th></th></tr>"
            + "".join(items)
            + "</table>"
        )
    return "".join(parts)


def _incidents_section(settings: Settings) -> str:
    """Open and acknowledged incidents, oldest first, then the newest resolved ones; MTTA and MTTR per use case."""
    from pipelines.alerting.incidents import Incidents

    incidents = Incidents(settings)
    unresolved = incidents.list()
    resolved = sorted(incidents.list(("resolved",)), key=lambda i: i.resolved_at, reverse=True)[:RESOLVED_SHOWN]

    def when(moment) -> str:
        return f"{moment:%Y-%m-%d %H:%M}" if moment else ""

    rows = []
    for i in [*unresolved, *resolved]:
        who = {"acknowledged": i.acknowledged_by, "resolved": i.resolved_by}.get(i.state) or ""
        state = f"{i.state}{' (cleared)' if i.cleared_at and i.state != 'resolved' else ''}"
        runbook = Path(i.runbook_url).name
        rows.append(
            f"<tr><td>#{i.id}</td><td>{_esc(state)}<br>{_esc(who)}</td><td class={_esc(i.severity)}>"
            f"{_esc(i.severity)}</td><td>{_esc(i.usecase)}<br>{_esc(i.owner)}</td><td>{_esc(i.kind)}</td>"
            f"<td>{_esc(i.summary)}{'<br><i>' + _esc(i.note) + '</i>' if i.note else ''}</td>"
            f"<td>{when(i.first_seen)}<br>{when(i.last_seen)}</td><td>{i.occurrences}</td>"
            f'<td><a href="runbooks/{_esc(runbook)}">{_esc(runbook)}</a></td></tr>'
        )
    times = "; ".join(
        f"{_esc(name)}: {r['incidents']} ({r['unresolved']} unresolved), MTTA {_minutes(r['mtta_s'])}, "
        f"MTTR {_minutes(r['mttr_s'])}"
        for name, r in sorted(incidents.report().items())
    )
    head = (f"<h2>Incidents</h2><p>{len(unresolved)} not resolved. {times}</p>"
            "<p>Acknowledge and resolve with <code>platform incidents ack|resolve</code>.</p>")  # fmt: skip
    if not rows:
        return head + "<p>No incident recorded.</p>"
    return (
        head + "<table><tr><th>#</th><th>state</th><th>severity</th><th>use case, owner</th><th>kind</th>"
        "<th>summary</th><th>first, last seen (UTC)</th><th>seen</th><th>runbook</th></tr>" + "".join(rows) + "</table>"
    )


def _minutes(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds / 60:.0f} min"


def render(settings: Settings) -> str:
    reg = registry(settings)
    models = reg.models()
    body = "".join(_model_section(settings, reg, m) for m in models) or "<p>No model is registered yet.</p>"
    return (
        f'<!doctype html><html><head><meta charset="utf-8"><title>Models</title><style>{STYLE}</style></head>'
        f"<body><h1>Models</h1>{_incidents_section(settings)}<p>Registry: <code>{_esc(reg.store.uri)}</code></p>"
        f"{body}</body></html>"
    )


def lineage(settings: Settings, model: str, version: int) -> dict:
    m = registry(settings).manifest(model, version)
    return {"model": model, "version": version, "lineage": m["lineage"], "training": m["training"], "gate": m["gate"]}
