"""A real breach, end to end: the champion replaced by a model that cannot score, under replayed consumer traffic,
burns the availability objective's budget; the real Prometheus scraping the real model service fires the
generated burn-rate alert, the real Alertmanager routes it to the platform's receiver, and an incident opens with
its runbook. Putting the sound champion back resolves the alert, and the incident is cleared for a person to
resolve. The data of 2013 is long past its freshness deadline: that miss opens its own incident.

The objective's window is one day (the spec's `objectives.window: P1D`) so the burn windows are seconds long
(129 s and 11 s for the fast page, Pyrra's scaling of the workbook's 1 h and 5 min): the same rules a 28-day
objective gets, on a clock a test can wait for."""

from __future__ import annotations

import json
import shutil
import time
import urllib.request

import pytest

from pipelines.alerting.incidents import Incidents
from pipelines.alerting.stack import running_monitoring
from pipelines.deploy.plan import DeploymentPlan, Variant, read_plan, write_plan
from pipelines.registry.registry import Registry
from pipelines.security.audit import audit_ledger
from pipelines.security.store import artifact_store
from pipelines.security.vault import issue_credentials
from pipelines.usecases.spec import resolve_usecase, windows
from serving.auth import create_key
from serving.client import ServiceClient
from serving.local import running_service, wait_ready
from serving.replay import ReplayLoop, day_requests
from tests.conftest import free_port, make_settings, require_service
from tests.e2e.conftest import SCREENSHOTS, chromium_page, register_broken

pytestmark = pytest.mark.e2e
BURN = "alert:ServingAvailabilityBudgetBurn:flight_delay:availability"
FRESHNESS = "alert:DataFreshnessMissed:flight_delay:freshness"


def _until(check, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.5)
    raise AssertionError(f"not within {timeout_s:.0f} s: {what}")


def _firing(prometheus: str) -> dict[str, dict]:
    with urllib.request.urlopen(f"{prometheus}/api/v1/alerts", timeout=5) as answer:  # nosec B310 # loopback
        alerts = json.loads(answer.read())["data"]["alerts"]
    return {a["labels"]["alertname"]: a for a in alerts if a["state"] == "firing"}


@pytest.fixture
def breach(champion, built, openbao, tmp_path):
    """The model service and the monitoring stack on a copy of the built data root, the flights' objectives
    over one day; Prometheus scrapes every second."""
    require_service(shutil.which("prometheus") is not None and shutil.which("prometheus-alertmanager") is not None,
                    "Prometheus or Alertmanager is not installed (`make monitoring-tools`)")  # fmt: skip
    store_settings, version = champion
    shutil.copytree(built.settings.data_root, tmp_path / "var")
    ports = ("serving_port", "exporter_port", "alert_receiver_port", "prometheus_port", "alertmanager_port",
             "stream_processor_port")  # fmt: skip
    overrides = {**windows(3, 1, 1), "objectives.window": "P1D"}
    settings = make_settings(
        tmp_path / "var", artifact_store_uri=store_settings.artifact_store_uri,
        usecase_overrides={"flight_delay": overrides}, **{p: free_port() for p in ports},
    )  # fmt: skip
    usecase = resolve_usecase(settings, "flight_delay")
    key = create_key(openbao.root, "breach-test", ["admin", "predict"])
    role_id, secret_id = issue_credentials(openbao.root, "serving")
    with running_service(settings, role_id, secret_id, settings.serving_port, log=tmp_path / "serve.log") as base:
        wait_ready(base)
        with running_monitoring(settings, [usecase], wait="1s", interval="1s") as stack:
            yield settings, usecase, version, base, key, stack


def _screenshot_alerts(prometheus: str) -> str:
    """Prometheus's alerts page (Debian ships the classic UI) in headless Chromium, kept as
    var/screenshots/prometheus_alerts.png; returns the page's text."""
    with chromium_page(height=900) as page:
        page.goto(f"{prometheus}/classic/alerts")
        page.get_by_text("ServingAvailabilityBudgetBurn").first.click()  # unfold the firing rule
        page.screenshot(path=str(SCREENSHOTS / "prometheus_alerts.png"), full_page=True)
        return page.locator("body").inner_text()


def _serve(settings, openbao, base: str, key: str, usecase, plan: DeploymentPlan) -> None:
    ledger = audit_ledger(settings)
    registry = Registry(artifact_store(settings, ledger), openbao.role("evaluation"), ledger)
    _, raw = read_plan(registry, usecase.name)
    write_plan(registry, usecase.name, plan, expected=raw)
    status = ServiceClient(base, key).endpoint(usecase).reload()
    assert [(v["name"], v["version"]) for v in status["variants"]] == [(v.name, v.version) for v in plan.variants]


def test_a_failing_model_under_traffic_pages_opens_an_incident_and_its_recovery_clears_it(breach, openbao, built):
    settings, usecase, champion, base, key, stack = breach
    broken = register_broken(settings, openbao, champion, float("nan"))
    _serve(settings, openbao, base, key, usecase, DeploymentPlan([Variant("champion", broken, 100)], reason="fault"))
    incidents = Incidents(settings)
    items = day_requests(settings, usecase, built.days[-2])
    with ReplayLoop(base, key, usecase, items, batch=20) as traffic:
        opened = _until(lambda: [i for i in incidents.list() if i.cause == BURN], 120, "the burn's incident")[0]
        statuses = set(traffic.statuses)
    assert statuses and all(code >= 500 for code in statuses), statuses
    alert = _firing(stack.prometheus)["ServingAvailabilityBudgetBurn"]
    assert alert["labels"]["severity"] == "page" and alert["labels"]["long_window"] == "129s"
    assert (opened.kind, opened.severity, opened.owner, opened.state) == (
        "ServingAvailabilityBudgetBurn", "page", "ml-platform", "open")  # fmt: skip
    assert opened.runbook_url == "docs/runbooks/serving_availability.md" and opened.cleared_at is None
    assert "of requests answered with a server error over 129s" in opened.summary
    shown = _screenshot_alerts(stack.prometheus)
    assert "ServingAvailabilityBudgetBurn" in shown and "firing" in shown.lower(), shown[:2000]
    # The day materialized in 2013 is long past the 02:00 deadline: its own ticket.
    late = _until(lambda: [i for i in incidents.list() if i.cause == FRESHNESS], 60, "the freshness incident")[0]
    assert (late.severity, late.runbook_url) == ("ticket", "docs/runbooks/data_freshness.md")

    # Recovery: the sound champion back; answered traffic lets the short window fall below the burn rate.
    _serve(settings, openbao, base, key, usecase, DeploymentPlan([Variant("champion", champion, 100)], reason="fix"))
    with ReplayLoop(base, key, usecase, items, batch=20) as traffic:
        cleared = _until(lambda: incidents.get(opened.id).cleared_at, 180, "the burn's incident cleared")
        assert "ServingAvailabilityBudgetBurn" not in _firing(stack.prometheus)
    assert set(traffic.statuses) == {200}
    after = incidents.get(opened.id)
    assert after.state == "open" and cleared >= opened.first_seen, "cleared, for a person to resolve with a note"
    ledger = [(r.action, r.subject) for r in audit_ledger(settings).records()]
    subject = "flight_delay/ServingAvailabilityBudgetBurn"
    assert ledger.index(("alert.firing", subject)) < ledger.index(("alert.resolved", subject))
    for action in ("incident.opened", "incident.cleared"):
        assert (action, f"incident/{opened.id}") in ledger, action
    resolved = incidents.resolve(opened.id, "oncall@example", f"v{broken} could not score; v{champion} restored")
    assert resolved.state == "resolved" and incidents.report()["flight_delay"]["mttr_s"] > 0
