"""The platform exporter reads freshness, the newest gate decision, the newest monitoring assessment and the
ledger's chain from a built data root, and serves them to Prometheus over HTTP."""

from __future__ import annotations

import json
import shutil
import urllib.request

from pipelines.alerting.exporter import PlatformCollector, serve_exporter
from pipelines.security.audit import audit_ledger
from tests.conftest import FLIGHT_DELAY, free_port, make_settings


def _samples(settings) -> dict[str, float]:
    collected = PlatformCollector(settings, [FLIGHT_DELAY]).collect()
    return {m.name: s.value for m in collected for s in m.samples}


def test_the_built_days_are_landed_and_materialized_through_their_end(built):
    samples = _samples(built.settings)
    assert samples["platform_data_landed_through_timestamp_seconds"] == built.end.timestamp()
    assert samples["platform_data_materialized_through_timestamp_seconds"] == built.end.timestamp()
    assert samples["platform_audit_ledger_intact"] == 1
    assert "platform_model_loss_ratio" not in samples, "no assessment yet: nothing is made up"


def test_the_newest_gate_decision_and_assessment_are_exported_and_a_broken_chain_says_so(built, tmp_path):
    shutil.copytree(built.settings.data_root, tmp_path / "var")
    settings = make_settings(tmp_path / "var")
    ledger = audit_ledger(settings)
    ledger.append("gate.decision", "flight_delay/v2", {"passed": True, "reasons": []})
    ledger.append("gate.decision", "flight_delay/v3", {"passed": False, "reasons": ["ROC AUC 0.55 < 0.60"]})
    day = settings.data_root / "monitoring" / "flight_delay" / "2013-01-05"
    day.mkdir(parents=True)
    (day / "assessment.json").write_text(json.dumps({
        "assessment": {"day": "2013-01-05", "feature_drift": 0.227, "prediction_drift": 0.384, "loss_ratio": 1.31},
        "decision": {"retrain": True, "reason": "3/3 consecutive days", "window_end": "2013-01-05"},
    }))  # fmt: skip
    samples = _samples(settings)
    assert (samples["platform_gate_last_version"], samples["platform_gate_last_passed"]) == (3, 0)
    assert samples["platform_model_loss_ratio"] == 1.31 and samples["platform_monitoring_retrain_requested"] == 1
    assert samples["platform_drift_feature_score"] == 0.227
    assert samples["platform_monitoring_assessed_day_timestamp_seconds"] == built.end.timestamp()
    records = samples["platform_audit_ledger_records"]
    assert records >= 2 and samples["platform_audit_ledger_intact"] == 1

    path = settings.data_root / "audit" / "ledger.jsonl"
    lines = path.read_text().splitlines()
    lines[-1] = lines[-1].replace('"passed": false', '"passed": true').replace('"passed":false', '"passed":true')
    path.write_text("\n".join(lines) + "\n")
    tampered = _samples(settings)
    assert tampered["platform_audit_ledger_intact"] == 0
    assert "platform_gate_last_passed" not in tampered, "nothing is read from a ledger whose chain is broken"

    port = free_port()
    server = serve_exporter(settings, [FLIGHT_DELAY], port)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as answer:  # nosec B310 # loopback
            text = answer.read().decode()
    finally:
        server.shutdown()
    assert 'platform_model_loss_ratio{usecase="flight_delay"} 1.31' in text
    assert "platform_audit_ledger_intact 0.0" in text
