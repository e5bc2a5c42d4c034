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


def test_a_real_prometheus_scrapes_the_exporter_and_evaluates_the_generated_rules(built, tmp_path):
    """Debian's Prometheus, on loopback, scraping the exporter of the built days (January 2013): the target is
    up, the rules load, and the freshness rule sees that the day after the last materialized one is long
    overdue (the alert fires at once: a passed deadline has nothing to wait out)."""
    import subprocess
    import time

    import yaml

    from pipelines.alerting.rules import write_rules
    from pipelines.processes import stop
    from tests.conftest import require_service

    binary = shutil.which("prometheus")
    require_service(binary is not None, "prometheus is not installed (`make monitoring-tools`: Debian's prometheus)")
    exporter_port, prometheus_port = free_port(), free_port()
    server = serve_exporter(built.settings, [FLIGHT_DELAY], exporter_port)
    rules = write_rules([FLIGHT_DELAY], tmp_path / "platform-rules.yml")
    config = tmp_path / "prometheus.yml"
    config.write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(rules)],
        "scrape_configs": [{"job_name": "platform_exporter",
                            "static_configs": [{"targets": [f"127.0.0.1:{exporter_port}"]}]}],
    }))  # fmt: skip
    log = (tmp_path / "prometheus.log").open("w")
    flags = [f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{prometheus_port}"]  # fmt: skip
    process = subprocess.Popen([binary, *flags], stdout=log, stderr=log)
    api = f"http://127.0.0.1:{prometheus_port}/api/v1"

    def get(path: str) -> dict:
        with urllib.request.urlopen(f"{api}/{path}", timeout=5) as answer:  # nosec B310 # loopback
            return json.loads(answer.read())["data"]

    try:
        deadline, alerts, targets = time.monotonic() + 60, [], []
        while time.monotonic() < deadline:
            try:
                targets = get("targets")["activeTargets"]
                alerts = [a for a in get("alerts")["alerts"] if a["labels"]["alertname"] == "DataFreshnessMissed"]
            except OSError:  # not listening yet
                pass
            if alerts and targets and targets[0]["health"] == "up":
                break
            time.sleep(0.5)
        assert targets and targets[0]["health"] == "up", (targets, (tmp_path / "prometheus.log").read_text())
        groups = {g["name"] for g in get("rules")["groups"]}
        assert {"flight_delay_slis", "flight_delay_objectives", "platform"} <= groups
        assert alerts and alerts[0]["state"] == "firing", alerts  # a passed deadline has no `for:` to wait out
        assert alerts[0]["labels"]["usecase"] == "flight_delay" and alerts[0]["labels"]["severity"] == "ticket"
    finally:
        stop(process)
        server.shutdown()
        log.close()
