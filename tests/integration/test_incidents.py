"""Incidents from alerts and from what the platform sees fail: one cause opens one incident (repeats update it),
open -> acknowledged -> resolved with who and when, a note to resolve, every transition in the ledger and sent to
the notifiers, MTTA and MTTR per use case."""

from __future__ import annotations

import datetime as dt
import http.server
import json
import threading

import pytest
import sqlalchemy as sa

from pipelines.alerting.incidents import EVENT_KINDS, IncidentError, Incidents, from_alert, platform_event, usecase_of
from pipelines.errors import SettingsError
from pipelines.settings import REPO_ROOT
from tests.conftest import free_port, make_settings

START = dt.datetime(2026, 12, 3, 9, 0, tzinfo=dt.UTC)


def _alert(status: str, minutes: int, window: str = "1h", objective: str = "availability", **labels) -> dict:
    at = (START + dt.timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")
    return {
        "status": status,
        "labels": {"alertname": "ServingAvailabilityBudgetBurn", "usecase": "flight_delay", "severity": "page",
                   "objective": objective, "owner": "ml-platform", "long_window": window, **labels},
        "annotations": {"summary": "flight_delay: 9% of requests answered with a server error over 1h",
                        "runbook_url": "docs/runbooks/serving_availability.md"},
        "startsAt": (START + dt.timedelta(minutes=minutes if status == "firing" else 0)).isoformat(),
        "endsAt": at if status == "resolved" else "0001-01-01T00:00:00Z",
    }  # fmt: skip


@pytest.fixture
def incidents(tmp_path):
    return Incidents(make_settings(tmp_path / "var"))


def test_one_cause_opens_one_incident_and_its_repeats_update_it(incidents):
    first = from_alert(incidents, _alert("firing", 0))
    again = from_alert(incidents, _alert("firing", 5, window="6h"))  # the slower burn of the same objective
    other = from_alert(incidents, _alert("firing", 6, objective="latency", alertname="ServingLatencyBudgetBurn"))
    assert again.id == first.id != other.id
    assert (again.occurrences, again.first_seen, again.last_seen) == (2, START, START + dt.timedelta(minutes=5))
    assert (first.state, first.owner, first.severity, first.runbook_url) == (
        "open", "ml-platform", "page", "docs/runbooks/serving_availability.md")  # fmt: skip
    assert [i.id for i in incidents.list()] == [first.id, other.id]
    slower_still_burns = {"alert:ServingAvailabilityBudgetBurn:flight_delay:availability"}
    assert from_alert(incidents, _alert("resolved", 30), slower_still_burns) is None
    assert incidents.get(first.id).cleared_at is None, "the 6-hour burn of the same objective still fires"
    cleared = from_alert(incidents, _alert("resolved", 40))
    assert cleared.state == "open" and cleared.cleared_at == START + dt.timedelta(minutes=40), "a person resolves it"
    actions = [(r.action, r.subject) for r in incidents.ledger.records()]
    assert actions[:2] == [("incident.opened", f"incident/{first.id}"), ("incident.repeated", f"incident/{first.id}")]
    assert ("incident.cleared", f"incident/{first.id}") in actions


def test_acknowledge_then_resolve_with_a_note_names_who_and_feeds_mtta_and_mttr(incidents):
    opened = from_alert(incidents, _alert("firing", 0))
    acked = incidents.acknowledge(opened.id, "oncall@example")
    assert acked.state == "acknowledged" and acked.acknowledged_by == "oncall@example"
    with pytest.raises(IncidentError, match="only an open incident is acknowledged"):
        incidents.acknowledge(opened.id, "someone-else")
    with pytest.raises(IncidentError, match="needs a note"):
        incidents.resolve(opened.id, "oncall@example", "  ")
    resolved = incidents.resolve(opened.id, "oncall@example", "rolled back to v3; v4 failed on null weather")
    assert (resolved.state, resolved.resolved_by, resolved.note) == (
        "resolved", "oncall@example", "rolled back to v3; v4 failed on null weather")  # fmt: skip
    with pytest.raises(IncidentError, match="was resolved by oncall@example"):
        incidents.resolve(opened.id, "oncall@example", "again")
    assert incidents.list() == [] and [i.id for i in incidents.list(("resolved",))] == [opened.id]
    # After resolution the same cause opens a new incident.
    assert from_alert(incidents, _alert("firing", 120)).id != opened.id
    report = incidents.report()["flight_delay"]
    assert (report["incidents"], report["unresolved"]) == (2, 1)
    assert report["mtta_s"] == pytest.approx((acked.acknowledged_at - START).total_seconds())
    assert report["mttr_s"] == pytest.approx((resolved.resolved_at - START).total_seconds())
    transitions = [r.action for r in incidents.ledger.records() if r.subject == f"incident/{opened.id}"]
    assert transitions == ["incident.opened", "incident.acknowledged", "incident.resolved"]
    assert incidents.ledger.verify().records == len(list(incidents.ledger.records()))


def test_an_unknown_incident_is_named(incidents):
    with pytest.raises(IncidentError, match="there is no incident #7"):
        incidents.acknowledge(7, "oncall@example")


def test_what_the_platform_sees_fail_opens_incidents_of_its_kind_owned_by_the_use_case(tmp_path):
    settings = make_settings(tmp_path / "var")
    assert usecase_of(settings, "flight_delay_deploy") == "flight_delay" and usecase_of(settings, "other") == "platform"
    first = platform_event(settings, "CanaryRolledBack", "rollback:flight_delay/v4", "flight_delay", "v4: error rate")
    again = platform_event(settings, "CanaryRolledBack", "rollback:flight_delay/v4", "flight_delay", "v4: latency")
    residency = platform_event(settings, "ResidencyViolation", "residency:s3://b", "platform", "bucket b in us-east-1")
    assert again.id == first.id != residency.id and again.occurrences == 2 and again.summary == "v4: latency"
    assert (first.kind, first.severity, first.owner, first.runbook_url) == (
        "CanaryRolledBack", "ticket", "ml-platform", "docs/runbooks/canary_rollback.md")  # fmt: skip
    assert (residency.severity, residency.owner) == ("page", "platform")
    for kind in EVENT_KINDS.values():
        assert (REPO_ROOT / "docs/runbooks" / kind.runbook).is_file(), kind.runbook


def test_an_incident_a_dag_run_opened_itself_explains_that_runs_failure(incidents):
    """A rolled-back release's run opens CanaryRolledBack for itself; the listener asks `explaining` before it opens
    DagRunFailed for the same run (tests/e2e/test_airflow_security.py drives it through Airflow)."""
    run, other = "flight_delay_deploy/manual__1", "flight_delay_deploy/manual__2"
    kw = {"kind": "CanaryRolledBack", "usecase": "flight_delay", "owner": "o", "severity": "ticket", "runbook_url": ""}
    rolled = incidents.seen("rollback:flight_delay/v4", START, summary="v4 rolled back", dag_run=run, **kw)
    again = incidents.seen("rollback:flight_delay/v4", START, summary="v4 again", dag_run=run, **kw)
    incidents.seen("rollback:flight_delay/v5", START, summary="v5 rolled back", **kw)  # not from a DAG run
    assert [i.id for i in incidents.explaining(run)] == [rolled.id] == [again.id]
    assert incidents.explaining(other) == []
    incidents.resolve(rolled.id, "oncall@example", "v4 stays out")
    assert incidents.explaining(run) == []  # a resolved incident explains no new failure


def test_an_unreachable_incident_store_does_not_hide_the_failure_it_reports(tmp_path, caplog):
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")  # the data root cannot hold an incidents folder
    assert platform_event(make_settings(blocked), "DagRunFailed", "dag:x", "platform", "x failed") is None
    assert "INCIDENT NOT RECORDED: DagRunFailed dag:x: x failed" in caplog.text


class _Hook:
    """A webhook receiver on loopback that keeps what it was POSTed (`status`: what it answers)."""

    def __init__(self, status: int = 200):
        self.received = received = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/incidents?token=s3cret"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def test_every_transition_but_a_repeat_is_posted_to_each_webhook_and_a_failing_one_loses_nothing(tmp_path):
    hook, broken = _Hook(), _Hook(status=500)
    down = f"http://127.0.0.1:{free_port()}/nobody-listens"
    incidents = Incidents(make_settings(tmp_path / "var", incident_notify=[hook.url, broken.url, down]))
    opened = from_alert(incidents, _alert("firing", 0))
    from_alert(incidents, _alert("firing", 5))  # a repeat: not sent
    from_alert(incidents, _alert("resolved", 30))
    incidents.acknowledge(opened.id, "oncall@example")
    incidents.resolve(opened.id, "oncall@example", "capacity added")
    assert [m["event"] for m in hook.received] == ["opened", "cleared", "acknowledged", "resolved"]
    last = hook.received[-1]["incident"]
    assert (last["id"], last["state"], last["resolved_by"], last["note"], last["usecase"]) == (
        opened.id, "resolved", "oncall@example", "capacity added", "flight_delay")  # fmt: skip
    assert last["runbook_url"] == "docs/runbooks/serving_availability.md" and last["first_seen"] == START.isoformat()
    assert len(broken.received) == 4, "a webhook answering 500 was still called for each"
    failed = [r.details for r in incidents.ledger.records() if r.action == "incident.notification_failed"]
    assert len(failed) == 8 and {f["event"] for f in failed} == {"opened", "cleared", "acknowledged", "resolved"}
    assert all("s3cret" not in f["notifier"] for f in failed), "the URL's token stays out of the ledger"
    assert incidents.get(opened.id).state == "resolved"


def test_a_notification_target_no_notifier_takes_is_refused_by_name(tmp_path):
    with pytest.raises(SettingsError, match="no notifier takes mailto"):
        Incidents(make_settings(tmp_path / "var", incident_notify=["mailto:oncall@example.com"]))


def test_a_notification_alertmanager_delivers_again_is_recorded_once(tmp_path):
    """Alertmanager delivers at least once: it retries a delivery it gave up on (one that failed part way, here
    with the incident store unreachable) and repeats a firing group. The retry records the alert whole, once."""
    from pipelines.alerting.stack import record_notification

    settings = make_settings(tmp_path / "var")
    firing = {"alerts": [{**_alert("firing", 0), "fingerprint": "a1b2"}]}
    store = settings.data_root / "incidents" / "incidents.sqlite"
    store.mkdir(parents=True)  # a folder where the incident store's file goes: the store cannot open
    with pytest.raises(sa.exc.OperationalError, match="unable to open database file"):
        record_notification(settings, firing)
    assert not (settings.data_root / "alerts" / "notifications.jsonl").exists(), "a failed delivery leaves no line"
    store.rmdir()
    assert record_notification(settings, firing) == 1
    assert record_notification(settings, firing) == 0, "the redelivery is the same notification"
    resolved = {"alerts": [{**_alert("resolved", 30), "fingerprint": "a1b2"}]}
    assert record_notification(settings, resolved) == 1
    lines = (settings.data_root / "alerts" / "notifications.jsonl").read_text().splitlines()
    assert [json.loads(line)["status"] for line in lines] == ["firing", "resolved"]
    ledger = Incidents(settings).ledger
    assert [r.action for r in ledger.records() if r.action.startswith("alert.")] == ["alert.firing", "alert.resolved"]
    [incident] = Incidents(settings).list()
    assert incident.occurrences == 1 and incident.cleared_at == START + dt.timedelta(minutes=30)
