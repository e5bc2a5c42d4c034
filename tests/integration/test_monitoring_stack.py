"""`make up`'s monitoring: a real Prometheus scraping the platform's targets with the generated rules, and a real
Alertmanager routing what fires to the platform's receiver, which records each notification, firing and
resolved, in the audit ledger."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import time
import urllib.error
import urllib.request

import pytest

from pipelines.alerting.stack import MonitoringUnavailable, running_monitoring
from pipelines.security.audit import audit_ledger
from tests.conftest import FLIGHT_DELAY, free_port, make_settings, require_service


def _call(url: str, body=None) -> tuple[int, dict]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:  # nosec B310 # loopback
            return answer.status, json.loads(answer.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def _until(check, timeout_s: float = 60, what: str = ""):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.5)
    raise AssertionError(f"not within {timeout_s:.0f} s: {what}")


@pytest.fixture
def monitored(built, tmp_path):
    require_service(shutil.which("prometheus") is not None and shutil.which("prometheus-alertmanager") is not None,
                    "Prometheus or Alertmanager is not installed (`make monitoring-tools`)")  # fmt: skip
    shutil.copytree(built.settings.data_root, tmp_path / "var")
    ports = ("serving_port", "exporter_port", "alert_receiver_port", "prometheus_port", "alertmanager_port",
             "stream_processor_port")  # fmt: skip
    settings = make_settings(tmp_path / "var", **{name: free_port() for name in ports})
    with running_monitoring(settings, [FLIGHT_DELAY], wait="1s") as stack:
        yield settings, stack


def test_prometheus_scrapes_the_platform_and_alertmanager_reaches_the_receiver(monitored):
    settings, stack = monitored

    def targets():
        active = _call(f"{stack.prometheus}/api/v1/targets")[1]["data"]["activeTargets"]
        health = {t["labels"]["job"]: t["health"] for t in active}
        return health if health.get("platform_exporter") == "up" and health.get("model_service") == "down" else None

    health = _until(targets, what="the exporter scraped up, the (stopped) model service down")
    assert set(health) == {"model_service", "platform_exporter", "stream_processor"}
    groups = {g["name"] for g in _call(f"{stack.prometheus}/api/v1/rules")[1]["data"]["groups"]}
    assert {"flight_delay_slis", "flight_delay_objectives", "platform"} <= groups

    labels = {"alertname": "ServingAvailabilityBudgetBurn", "usecase": "flight_delay", "severity": "page",
              "objective": "availability", "owner": "ml-platform", "long_window": "1h"}  # fmt: skip
    notes = {"summary": "flight_delay: 9% of requests answered with a server error over 1h",
             "runbook_url": "docs/runbooks/serving_availability.md"}  # fmt: skip
    now = dt.datetime.now(dt.UTC)
    status, _ = _call(f"{stack.alertmanager}/api/v2/alerts",
                      [{"labels": labels, "annotations": notes, "startsAt": now.isoformat()}])  # fmt: skip
    assert status == 200
    ledger = audit_ledger(settings)

    def recorded(action: str):
        return [
            r for r in ledger.records() if r.action == action and r.subject.endswith("ServingAvailabilityBudgetBurn")
        ]

    firing = _until(lambda: recorded("alert.firing"), what="Alertmanager's notification in the ledger")
    assert firing[0].subject == "flight_delay/ServingAvailabilityBudgetBurn" and firing[0].actor == "alertmanager"
    assert firing[0].details["severity"] == "page" and firing[0].details["runbook_url"] == notes["runbook_url"]
    ended = dt.datetime.now(dt.UTC)
    over = {"labels": labels, "annotations": notes, "startsAt": now.isoformat(), "endsAt": ended.isoformat()}
    _call(f"{stack.alertmanager}/api/v2/alerts", [over])
    resolved = _until(lambda: recorded("alert.resolved"), what="the resolution in the ledger")
    assert resolved[0].details["fingerprint"] == firing[0].details["fingerprint"]
    # The notification opened an incident with its runbook; the resolution cleared it, for a person to resolve.
    from pipelines.alerting.incidents import Incidents

    (incident,) = [i for i in Incidents(settings).list() if i.kind == "ServingAvailabilityBudgetBurn"]
    assert (incident.kind, incident.usecase, incident.severity, incident.runbook_url) == (
        "ServingAvailabilityBudgetBurn", "flight_delay", "page", notes["runbook_url"])  # fmt: skip
    assert incident.state == "open" and incident.cleared_at is not None
    # Prometheus's own rules may notify meanwhile (the built days are years old: DataFreshnessMissed fires at once)
    lines = [
        json.loads(line) for line in (settings.data_root / "alerts" / "notifications.jsonl").read_text().splitlines()
    ]
    assert [line["status"] for line in lines if line["subject"] == firing[0].subject] == ["firing", "resolved"]
    assert ledger.verify().records >= 2


def test_the_receiver_refuses_what_is_not_a_notification_and_records_nothing(monitored):
    settings, stack = monitored
    before = audit_ledger(settings).verify().records
    status, body = _call(stack.receiver, {"alerts": [{"labels": "x"}]})
    assert status == 400 and "not an Alertmanager webhook notification" in body["error"]
    assert _call(stack.receiver.replace("/alerts", "/elsewhere"), {})[0] == 404
    assert audit_ledger(settings).verify().records == before


def test_a_missing_prometheus_is_named_with_the_fix(built, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # neither binary on it
    with pytest.raises(MonitoringUnavailable, match=r"\['prometheus', 'prometheus-alertmanager'\] not installed"):
        with running_monitoring(make_settings(tmp_path / "var"), [FLIGHT_DELAY]):
            pass
