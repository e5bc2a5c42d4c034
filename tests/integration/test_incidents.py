"""Incidents from alerts: one cause opens one incident (repeats update it), open -> acknowledged -> resolved with
who and when, a note to resolve, every transition in the ledger, MTTA and MTTR per use case."""

from __future__ import annotations

import datetime as dt

import pytest

from pipelines.alerting.incidents import IncidentError, Incidents, from_alert
from tests.conftest import make_settings

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
