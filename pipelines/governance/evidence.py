"""The compliance evidence pack of a use case (`platform compliance-report`): what an auditor asks, answered from
what the platform already records, and checked before it is shown.

For each model version: where its data and artifacts lived (every store, its region, the residency refusals
recorded), its lineage back to the raw partitions with their SHA-256 (the suites they passed, the dbt manifest,
the FeatureService, the commit), every decrypt of its artifacts (the ledger's records matched to the Vault audit
device's decrypt requests, with each side's unmatched entries flagged), the decisions about it (gate, approvals,
aliases, deployments, canary steps, rollbacks, drift assessments, retrain requests), and its model card, also
exported as a CycloneDX ML-BOM (mlbom.py). Then the ledger's chain verification and head hash, and a table
mapping each section to the provisions it evidences (UAE PDPL, ISO/IEC 42001 and 27001, the EU AI Act).

The pack verifies itself: the ledger's hash chain and every manifest's signature are checked first; a failure
is the report's first line (`integrity.ok` false, a red banner), never a quiet render.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import re
from pathlib import Path

from pipelines.errors import AuditChainBroken, PlatformError
from pipelines.settings import Settings

DECISIONS = ("gate.decision", "model.registered", "model.rejected", "approval.", "alias.", "deployment.",
             "monitoring.", "incident.opened")  # fmt: skip
MATCH_SECONDS = 10.0  # a ledger decrypt follows the Vault request behind it by at most this much
# The Vault audit device HMACs what a request carries. Vault hashes any value with the same key on request
# (sys/audit-hash), so the wrapped data key each ledger decrypt names is matched exactly to the audit entry that
# unwrapped it: a decrypt of this platform's artifacts that bypassed the ledger is found, one of another
# platform sharing the Vault is not counted.
CONTROLS = {
    "Residency": ["UAE PDPL (Federal Decree-Law 45/2021) Art. 22-23: cross-border transfer, data kept in the "
                  "allowed regions", "ISO/IEC 27001:2022 A.8.24: use of cryptography (sealed artifacts)"],
    "Lineage": ["UAE PDPL Art. 5: processing controls (a specified purpose, accurate data)",
                "UAE PDPL Art. 7: the controller's record of the personal data it processes",
                "ISO/IEC 42001 A.7.5: data provenance", "EU AI Act Annex IV 2(d): data requirements"],
    "Decrypts": ["ISO/IEC 27001:2022 A.8.15: logging", "ISO/IEC 27001:2022 A.8.24: use of cryptography",
                 "UAE PDPL Art. 20: security of processing"],
    "Decisions": ["EU AI Act Art. 12: record-keeping", "ISO/IEC 42001 A.6.2.8: AI system event logs",
                  "UAE PDPL Art. 18: automated processing under human oversight (four-eyes approval)"],
    "Ledger": ["ISO/IEC 27001:2022 A.8.15: logs protected against tampering", "EU AI Act Art. 12"],
    "Model cards": ["EU AI Act Annex IV 1-3: description, development, performance and limits",
                    "ISO/IEC 42001 A.6.2.8", "UAE PDPL Art. 13: the information a data subject may ask for"],
    "Data subjects": ["UAE PDPL Art. 15 (erasure), Art. 18 (objection to automated decisions): "
                      "platform erase / platform objection, in the ledger as subject.*"],
}  # fmt: skip


def evidence(settings: Settings, model: str, version: int | None = None, vault_audit: Path | None = None) -> dict:
    """The evidence about `model` (one version, or every version), as a JSON-ready document."""
    from pipelines.registry.registry import Registry
    from pipelines.security.audit import audit_ledger
    from pipelines.security.store import artifact_store
    from pipelines.security.vault import Vault
    from pipelines.usecases.spec import resolve_usecase

    usecase = resolve_usecase(settings, model)
    ledger = audit_ledger(settings)
    problems: list[str] = []
    try:
        chain = ledger.verify()
        chain_report = {"intact": True, "records": chain.records, "head": chain.head}
    except AuditChainBroken as exc:
        chain_report = {"intact": False, "error": str(exc)}
        problems.append(f"the audit ledger's chain is broken: {exc}")
    records = _readable(ledger)
    registry = Registry(artifact_store(settings, ledger), Vault.from_settings(settings), ledger)
    manifests = {}
    for v in [version] if version is not None else registry.versions(model):
        try:
            manifests[v] = registry.manifest(model, v)
        except PlatformError as exc:  # a signature, or a stored manifest, that does not verify
            problems.append(f"{model} v{v}: its manifest does not verify: {exc}")
    vault_log = vault_audit or settings.audit_dir / "vault_audit.log"
    requests = _vault_decrypts(vault_log)
    hashes = _audit_hashes(registry, settings.vault_audit_device, records) if requests is not None else {}
    matched, unexplained = _match(records, requests or [], hashes)
    versions = {}
    for v, manifest in manifests.items():
        key = f"{model}/v{v}"
        mine = [
            r for r in records if r["action"] == "artifact.decrypt" and r["details"].get("name", "").startswith(key)
        ]
        decrypts = [{**r, "vault": matched.get(r["seq"])} for r in mine]
        if requests is not None:
            problems += [f"{key}: decrypt at {d['time']} ({d['details']['name']}) has no Vault audit record"
                         for d in decrypts if d["vault"] is None]  # fmt: skip
        versions[str(v)] = {
            "lineage": _lineage(manifest),
            "decrypts": decrypts,
            "decisions": [r for r in records if r["action"].startswith(DECISIONS) and _about(r, model, v)],
            "model_card": model_card(usecase, manifest),
        }
    problems += [f"Vault decrypt at {e['time']} by role {e['role']} has no ledger record" for e in unexplained]
    return {
        "usecase": model,
        "title": usecase.title,
        "owner": usecase.owner,
        "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "integrity": {
            "ok": not problems,
            "problems": problems,
            "ledger": chain_report,
            "manifests_verified": sorted(manifests),
            "vault_audit": str(vault_log)
            if requests is not None
            else f"not readable here ({vault_log}): pass --vault-audit FILE",
        },  # fmt: skip
        "residency": _residency(settings, usecase, records),
        "versions": versions,
        "subjects": [r for r in records if r["action"].startswith("subject.") and r["subject"].startswith(model)],
        "controls": CONTROLS,
    }


def _about(record: dict, model: str, version: int) -> bool:
    """A record about `version` of `model`: its subject, or a plan or alias of the model naming it."""
    if record["subject"] == f"{model}/v{version}":
        return True
    return record["subject"] == model and version in _versions_named(record["details"])


def _versions_named(details: dict) -> set[int]:
    text = json.dumps(details)
    return {int(n) for n in re.findall(r'"version": (\d+)', text)} | {int(n) for n in re.findall(r"\bv(\d+)\b", text)}


def _readable(ledger) -> list[dict]:
    """Every ledger record that can be read, as plain dicts (a broken chain still shows what it holds)."""
    out = []
    try:
        for r in ledger.records():
            out.append({"seq": r.seq, "time": r.time, "actor": r.actor, "action": r.action, "subject": r.subject,
                        "details": r.details})  # fmt: skip
    except AuditChainBroken:
        pass
    return out


def _residency(settings: Settings, usecase, records: list[dict]) -> dict:
    from pipelines.security.store import S3Store, artifact_store

    store, host = artifact_store(settings), "the platform's host"
    check = "a folder on the platform's host"
    region = host
    if isinstance(store, S3Store):
        region = store.check_residency()  # outside the allowed regions: raises, audited, before the report renders
        check = f"GetBucketLocation answered {region} while this report was made"
    postgres = f"PostgreSQL (Vault connection {settings.postgres_conn_id})"
    local = settings.feast_env == "local"
    stores = [
        {"store": "raw partitions", "where": str(settings.raw_dir), "region": host},
        {
            "store": "warehouse",
            "where": str(settings.warehouse_path) if settings.warehouse_target == "duckdb" else postgres,
            "region": host if settings.warehouse_target == "duckdb" else "its server's",
        },  # fmt: skip
        {
            "store": "Feast offline store",
            "where": str(settings.feature_export_dir) if local else postgres,
            "region": host if local else "its server's",
        },  # fmt: skip
        {
            "store": "Feast online store",
            "where": str(settings.feast_dir) if local else settings.redis_url,
            "region": host if local else "its server's",
        },  # fmt: skip
        {"store": "model artifacts (sealed) and manifests", "where": store.uri, "region": region, "check": check},
        {
            "store": "prediction log",
            "where": str(settings.data_root / "predictions")
            if settings.prediction_log == "parquet"
            else "PostgreSQL table serving.predictions",
            "region": host,
        },  # fmt: skip
    ]
    for name, table in usecase.sources.tables.items():
        where = table.file or table.uri or table.table or "a query"
        region = "checked before each read" if table.kind == "object_store" else "the source's"
        stores.append({"store": f"source table {name} ({table.kind})", "where": where, "region": region})
    return {
        "allowed_regions": settings.allowed_regions,
        "spec_regions": usecase.residency.regions,
        "data_class": usecase.residency.data_class,
        "stores": stores,
        "violations": [r for r in records if r["action"] == "residency.violation"],
    }


def _lineage(manifest: dict) -> dict:
    lineage = manifest["lineage"]
    raw = [{"table": table, "day": day, **landed} for table, days in lineage["raw_partitions"].items()
           for day, landed in days.items()]  # fmt: skip
    suites = lineage.get("validation", [])
    return {
        "window": manifest["training"]["window"],
        "raw_partitions": raw,
        "raw_reference": lineage.get("raw_reference", {}),
        "suites": suites,
        "suites_passed": bool(suites) and all(s.get("success") for s in suites),
        "dbt_manifest_sha256": lineage["dbt"]["manifest_sha256"],
        "feature_service": lineage["feature_service"],
        "code": lineage.get("code", {}),
        "files": manifest["files"],
    }


def _audit_hashes(registry, device: str, records: list[dict]) -> dict[str, str]:
    """{wrapped data key: the audit device's HMAC of it} for every data key of this platform's artifacts: those of
    the sealed objects in the store now, and those the ledger's seal and decrypt records name (objects since
    sealed anew by an erasure, rewrapped by a key rotation or deleted by retention)."""
    from pipelines.security.artifacts import SEALED_PREFIX, Envelope

    store, client = registry.store, registry.vault.client
    wrapped = {r["details"]["wrapped_key"] for r in records
               if r["action"] in ("artifact.seal", "artifact.decrypt") and "wrapped_key" in r["details"]}  # fmt: skip
    wrapped |= {Envelope.from_bytes(store.get(key), f"{store.uri}/{key}").header["wrapped_key"]
                for key in store.keys(SEALED_PREFIX)}  # fmt: skip
    return {w: client.sys.calculate_hash(path=device, input_to_hash=w)["data"]["hash"] for w in sorted(wrapped)}


def _vault_decrypts(path: Path) -> list[dict] | None:
    """The Vault audit device's requests to decrypt an artifact's data key, or None without its file."""
    if not path.is_file():
        return None
    found = []
    for line in path.read_text().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        request, auth = entry.get("request") or {}, entry.get("auth") or {}
        if entry.get("type") == "request" and request.get("path") == "transit/decrypt/artifacts":
            found.append({"time": entry["time"], "role": (auth.get("metadata") or {}).get("role_name"),
                          "policies": auth.get("policies", []), "request_id": request.get("id"),
                          "ciphertext": (request.get("data") or {}).get("ciphertext")})  # fmt: skip
    return found


def _match(records: list[dict], requests: list[dict], hashes: dict[str, str]) -> tuple[dict[int, dict], list[dict]]:
    """Each ledger decrypt (by seq) matched to the latest unused Vault request for the same data key at most
    MATCH_SECONDS before it; and the Vault decrypts of this platform's data keys that no ledger record explains."""
    decrypts = sorted((r for r in records if r["action"] == "artifact.decrypt"), key=lambda r: r["time"])
    ours = set(hashes.values())
    pool = sorted((e for e in requests if e["ciphertext"] in ours), key=lambda e: e["time"])
    used: set[int] = set()
    matched: dict[int, dict] = {}
    for record in decrypts:
        at, hashed = _instant(record["time"]), hashes.get(record["details"].get("wrapped_key", ""))
        near = [i for i, e in enumerate(pool) if i not in used and e["ciphertext"] == hashed
                and 0 <= (at - _instant(e["time"])).total_seconds() <= MATCH_SECONDS]  # fmt: skip
        if near:
            used.add(near[-1])
            matched[record["seq"]] = pool[near[-1]]
    if not records:
        return matched, []
    # Within the ledger's own period: the Vault may have served this store's artifacts before this ledger began
    # (a data root restored elsewhere) or after its last record.
    first = _instant(records[0]["time"]) - dt.timedelta(seconds=MATCH_SECONDS)
    last = _instant(records[-1]["time"])
    return matched, [e for i, e in enumerate(pool) if i not in used and first <= _instant(e["time"]) <= last]


def _instant(text: str) -> dt.datetime:
    """An ISO 8601 instant, with nanoseconds (Vault's) cut to microseconds and no offset read as UTC."""
    found = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)?$", text)
    if found is None:
        raise ValueError(f"{text!r} is not an ISO 8601 instant")
    when, fraction, zone = found.groups()
    offset = "+00:00" if zone in (None, "Z") else zone
    return dt.datetime.fromisoformat(f"{when}.{(fraction or '0')[:6].ljust(6, '0')}{offset}")


def model_card(usecase, manifest: dict) -> dict:
    """The version's model card: intended use, data, metrics and slices, limits, owner."""
    metrics, window = manifest["metrics"], manifest["training"]["window"]
    return {
        "name": f"{usecase.name} v{manifest['version']}",
        "family": manifest["family"],
        "owner": usecase.owner,
        "intended_use": usecase.description,
        "task": usecase.task,
        "prediction_time": usecase.prediction.label,
        "data": {
            "window": window,
            "feature_service": usecase.features.feature_service,
            "features": manifest["onnx_io"]["features"],
            "residency": usecase.residency.model_dump(),
        },  # fmt: skip
        "metrics": {
            "holdout": metrics["holdout"],
            "baseline": metrics.get("baseline"),
            "champion_on_same_holdout": metrics.get("champion_on_same_holdout"),
        },  # fmt: skip
        "slices": metrics.get("slices"),
        "limits": {
            "gate": manifest["gate"],
            "behaviour": metrics.get("behaviour"),
            "scope": f"evidenced on {window['train_start']}..{window['holdout_end']} of {usecase.title} only",
        },  # fmt: skip
        "registered_at": manifest["registered_at"],
        "registered_by": manifest.get("registered_by"),
    }


def render_html(doc: dict) -> str:
    """The evidence as one self-contained HTML page (no script, no external resource)."""
    esc = html.escape
    integrity = doc["integrity"]
    banner = ('<p class="ok">VERIFIED: the ledger\'s hash chain is intact (head <code>'
              f'{esc(integrity["ledger"].get("head", ""))}</code>, {integrity["ledger"].get("records")} records) and '
              f'every manifest\'s signature verifies.</p>' if integrity["ok"] else
              '<p class="bad">INTEGRITY FAILURE: this evidence cannot be relied on as shown:</p><ul class="bad">'
              + "".join(f"<li>{esc(p)}</li>" for p in integrity["problems"]) + "</ul>")  # fmt: skip
    parts = [f"<h1>Compliance evidence: {esc(doc['title'])} ({esc(doc['usecase'])})</h1>",
             f"<p>Owner {esc(doc['owner'])}; generated {esc(doc['generated_at'])}; Vault audit: "
             f"{esc(integrity['vault_audit'])}.</p>", banner]  # fmt: skip
    residency = doc["residency"]
    parts.append(f"<h2>Residency</h2><p>Data class {esc(residency['data_class'])}; allowed regions "
                 f"{esc(', '.join(residency['allowed_regions']))} (spec: {esc(', '.join(residency['spec_regions']))});"
                 f" refusals recorded: {len(residency['violations'])}.</p>"
                 + _table(["store", "where", "region", "check"], residency["stores"]))  # fmt: skip
    for version, part in doc["versions"].items():
        lineage, card = part["lineage"], part["model_card"]
        parts.append(f"<h2>Version {esc(version)}: {esc(card['family'])}</h2>")
        parts.append(
            f"<h3>Model card</h3><p><b>Intended use.</b> {esc(card['intended_use'])}</p>"
            f"<p>Owner {esc(card['owner'])}; registered {esc(card['registered_at'])} by "
            f"{esc(card['registered_by'] or 'a scheduled run')}; predicted {esc(card['prediction_time'])}; "
            f"limits: {esc(card['limits']['scope'])}; gate "
            f"{'passed' if card['limits']['gate']['passed'] else 'REJECTED'}.</p>"
            + _table(["metric", "this version", "champion (same holdout)", "baseline"], _metrics(card))
            + "<p>Calibration on the holdout (reliability bins):</p>"
            + _table(["bin", "rows", "predicted", "observed"], card["metrics"]["holdout"].get("calibration") or [])
        )
        parts.append(f"<h3>Lineage</h3><p>Window {esc(json.dumps(lineage['window']))}; suites passed: "
                     f"{lineage['suites_passed']}; dbt manifest <code>{esc(str(lineage['dbt_manifest_sha256']))}</code>"
                     f"; FeatureService {esc(lineage['feature_service'].get('name'))} <code>"
                     f"{esc(str(lineage['feature_service'].get('definitions_sha256')))}</code>; commit <code>"
                     f"{esc(str(lineage['code'].get('commit')))}</code>.</p>"
                     + _table(["table", "day", "rows", "sha256"], lineage["raw_partitions"]))  # fmt: skip
        decrypts = [{"time": d["time"], "by": d["actor"], "file": d["details"].get("name"), "outcome":
                     d["details"].get("outcome"), "Vault role": (d["vault"] or {}).get("role", "NO VAULT RECORD")}
                    for d in part["decrypts"]]  # fmt: skip
        parts.append("<h3>Decrypts</h3>" + _table(["time", "by", "file", "outcome", "Vault role"], decrypts))
        decisions = [{"time": r["time"], "action": r["action"], "by": r["actor"],
                      "details": json.dumps(r["details"])[:300]} for r in part["decisions"]]  # fmt: skip
        parts.append("<h3>Decisions</h3>" + _table(["time", "action", "by", "details"], decisions))
    if doc["subjects"]:
        rows = [
            {"time": r["time"], "action": r["action"], "details": json.dumps(r["details"])} for r in doc["subjects"]
        ]
        parts.append("<h2>Data subjects</h2>" + _table(["time", "action", "details"], rows))
    ledger = integrity["ledger"]
    parts.append(f"<h2>Ledger</h2><p>{'Intact' if ledger['intact'] else 'BROKEN'}: "
                 f"{esc(str(ledger.get('records', ledger.get('error'))))} records; head <code>"
                 f"{esc(str(ledger.get('head', '-')))}</code>.</p>")  # fmt: skip
    parts.append("<h2>Controls</h2>" + _table(["section", "evidence for"], [
        {"section": s, "evidence for": "; ".join(c)} for s, c in doc["controls"].items()]))  # fmt: skip
    style = ("body{font-family:sans-serif;margin:1.5em;max-width:90em}td,th{padding:3px 8px;text-align:left;"
             "vertical-align:top;font-size:90%}table{border-collapse:collapse;margin-bottom:1em}"
             "tr:nth-child(even){background:#f4f4f4}.ok{color:#2a7a2a;font-weight:bold}.bad{color:#b00;"
             "font-weight:bold}")  # fmt: skip
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>Compliance: {esc(doc['usecase'])}</title>"
            f"<style>{style}</style></head><body>{''.join(parts)}</body></html>")  # fmt: skip


def _metrics(card: dict) -> list[dict]:
    champion, baseline = card["metrics"]["champion_on_same_holdout"] or {}, card["metrics"]["baseline"] or {}
    return [{"metric": k, "this version": v, "champion (same holdout)": champion.get(k), "baseline": baseline.get(k)}
            for k, v in card["metrics"]["holdout"].items() if not isinstance(v, list)]  # fmt: skip


def _table(columns: list[str], rows: list[dict]) -> str:
    if not rows:
        return "<p>None recorded.</p>"
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(row.get(c)))}</td>" for c in columns) + "</tr>"
                   for row in rows)  # fmt: skip
    return f"<table><tr>{head}</tr>{body}</table>"


def _cell(value) -> str:
    if value is None:
        return "-"
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def write_report(settings: Settings, model: str, out: Path, version: int | None = None,
                 vault_audit: Path | None = None) -> dict:  # fmt: skip
    """compliance.json, compliance.html and one CycloneDX ML-BOM per version under `out`; the document."""
    from pipelines.governance.mlbom import ml_bom

    doc = evidence(settings, model, version, vault_audit)
    out.mkdir(parents=True, exist_ok=True)
    (out / "compliance.json").write_text(json.dumps(doc, indent=2, default=str) + "\n")
    (out / "compliance.html").write_text(render_html(doc))
    for v, part in doc["versions"].items():
        (out / f"mlbom-{model}-v{v}.cdx.json").write_text(ml_bom(part["model_card"], part["lineage"]))
    return doc
