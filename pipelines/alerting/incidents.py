"""Incidents: what the platform noticed and someone must work to closure (ITIL incident management).

Two sources open them: Prometheus alerts, through Alertmanager's webhook (`from_alert`), and what the
platform itself sees fail (`platform_event`): a failed DAG run (the Airflow listener), a canary rolled back,
a residency violation, a model the service cannot load. Each has one cause (`alert:<alert>:<use
case>:<objective>`, `dag:<dag id>`, `rollback:<model>/v<n>`, `residency:<where>`, `load:<use case>`): while
it is not resolved, a repeat of the cause updates it (last seen, occurrences) instead of opening another.
Its state moves open -> acknowledged -> resolved, each step naming who and when; resolving needs a note
(what was done). When its cause stops (the alert resolves, the DAG's next run passes, the model loads), the
incident is marked cleared but stays to be resolved by a person. Every transition is a ledger record
(`incident.opened`, `.repeated`, `.cleared`, `.acknowledged`, `.resolved`), and every transition but a
repeat is sent to the notifiers (pipelines/alerting/notify.py). Stored in SQLite under the data root, or the
PostgreSQL schema `incidents` with the production warehouse; `platform incidents list|ack|resolve|report`.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import asdict, dataclass

import sqlalchemy as sa

from pipelines.alerting.rules import RUNBOOKS
from pipelines.errors import PlatformError
from pipelines.settings import Settings

SCHEMA = "incidents"
STATES = ("open", "acknowledged", "resolved")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EventKind:
    """A kind of failure the platform reports itself: how urgent it is and what to read."""

    severity: str
    runbook: str


EVENT_KINDS = {
    "DagRunFailed": EventKind("ticket", "dag_run_failed.md"),
    "CanaryRolledBack": EventKind("ticket", "canary_rollback.md"),
    "ResidencyViolation": EventKind("page", "residency_violation.md"),
    "ModelUnloadable": EventKind("page", "model_unloadable.md"),
}


class IncidentError(PlatformError):
    """A transition the incident's state does not allow, or an incident that does not exist."""


@dataclass(frozen=True)
class Incident:
    id: int
    cause: str
    kind: str
    usecase: str
    owner: str
    severity: str
    summary: str
    runbook_url: str
    state: str
    first_seen: dt.datetime
    last_seen: dt.datetime
    occurrences: int
    cleared_at: dt.datetime | None
    acknowledged_by: str | None
    acknowledged_at: dt.datetime | None
    resolved_by: str | None
    resolved_at: dt.datetime | None
    note: str | None

    def render(self) -> str:
        who = {"acknowledged": f" by {self.acknowledged_by}", "resolved": f" by {self.resolved_by}"}.get(self.state, "")
        cleared = f", cleared {self.cleared_at:%Y-%m-%d %H:%M}" if self.cleared_at else ""
        return (f"#{self.id} {self.state}{who} [{self.severity}] {self.usecase} {self.kind}: {self.summary} "
                f"(first {self.first_seen:%Y-%m-%d %H:%M}, last {self.last_seen:%Y-%m-%d %H:%M}, "
                f"{self.occurrences}x{cleared}) runbook {self.runbook_url}")  # fmt: skip

    def as_json(self) -> dict:
        return {k: v.isoformat() if isinstance(v, dt.datetime) else v for k, v in asdict(self).items()}


class Incidents:
    """The platform's incident records (`settings`' warehouse backend) and their ledger trail."""

    def __init__(self, settings: Settings):
        from pipelines.alerting.notify import notifiers
        from pipelines.security.audit import audit_ledger

        self.settings, self.ledger, self.notifiers = settings, audit_ledger(settings), notifiers(settings)
        if settings.warehouse_target == "postgres":
            from pipelines.security.secrets import postgres_connection

            self.engine = sa.create_engine(postgres_connection(settings).sqlalchemy_url("psycopg2"))
            with self.engine.begin() as con:
                con.execute(sa.text(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}"))
            schema = SCHEMA
        else:
            folder = settings.data_root / "incidents"
            folder.mkdir(parents=True, exist_ok=True)
            self.engine, schema = sa.create_engine(f"sqlite:///{folder / 'incidents.sqlite'}"), None
        moment = sa.DateTime(timezone=True)
        self.table = sa.Table(
            "incidents", sa.MetaData(schema=schema),
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            *(sa.Column(name, sa.Text, nullable=False) for name in
              ("cause", "kind", "usecase", "owner", "severity", "summary", "runbook_url", "state")),
            sa.Column("first_seen", moment, nullable=False), sa.Column("last_seen", moment, nullable=False),
            sa.Column("occurrences", sa.Integer, nullable=False), sa.Column("cleared_at", moment),
            sa.Column("acknowledged_by", sa.Text), sa.Column("acknowledged_at", moment),
            sa.Column("resolved_by", sa.Text), sa.Column("resolved_at", moment), sa.Column("note", sa.Text),
        )  # fmt: skip
        # Which incidents a DAG run opened or repeated itself (a rollback, a smoke failure): its failure is
        # then explained, and the listener opens no second incident for it (`explaining`).
        self.runs = sa.Table(
            "run_incidents", self.table.metadata,
            sa.Column("dag_run", sa.Text, primary_key=True), sa.Column("incident", sa.Integer, primary_key=True),
        )  # fmt: skip
        self.table.metadata.create_all(self.engine)

    def seen(self, cause: str, at: dt.datetime, *, kind: str, usecase: str, owner: str, severity: str,
             summary: str, runbook_url: str, dag_run: str | None = None) -> Incident:  # fmt: skip
        """The cause was seen at `at`: its unresolved incident updated, or a new one opened. `dag_run`
        (`<dag id>/<run id>`): the Airflow run that saw it, whose failure it explains."""
        t = self.table
        with self.engine.begin() as con:
            row = con.execute(sa.select(t).where(t.c.cause == cause, t.c.state != "resolved")).mappings().first()
            if row is None:
                values = {"cause": cause, "kind": kind, "usecase": usecase, "owner": owner, "severity": severity,
                          "summary": summary, "runbook_url": runbook_url, "state": "open", "first_seen": at,
                          "last_seen": at, "occurrences": 1}  # fmt: skip
                ident = con.execute(t.insert().values(**values)).inserted_primary_key[0]
                action = "incident.opened"
            else:
                ident, action = row["id"], "incident.repeated"
                con.execute(t.update().where(t.c.id == ident).values(
                    last_seen=max(_utc(row["last_seen"]), at), occurrences=row["occurrences"] + 1, cleared_at=None,
                    summary=summary, severity=_worse(row["severity"], severity)))  # fmt: skip
            known = dag_run and con.execute(sa.select(self.runs).where(
                self.runs.c.dag_run == dag_run, self.runs.c.incident == ident)).first()  # fmt: skip
            if dag_run and not known:
                con.execute(self.runs.insert().values(dag_run=dag_run, incident=ident))
        incident = self.get(ident)
        self.ledger.append(action, f"incident/{ident}", {"cause": cause, "severity": incident.severity,
                                                          "summary": summary, "usecase": usecase})  # fmt: skip
        if action == "incident.opened":
            self._notify("opened", incident)
        return incident

    def cleared(self, cause: str, at: dt.datetime) -> Incident | None:
        """The cause stopped (its alert resolved, the DAG's next run passed, the model loaded): the unresolved
        incident is marked cleared, for someone to resolve; None when there was none to clear."""
        t = self.table
        with self.engine.begin() as con:
            row = con.execute(sa.select(t).where(t.c.cause == cause, t.c.state != "resolved")).mappings().first()
            if row is None or row["cleared_at"] is not None:  # nothing to clear, or cleared already
                return None
            con.execute(t.update().where(t.c.id == row["id"]).values(cleared_at=at))
        self.ledger.append("incident.cleared", f"incident/{row['id']}", {"cause": cause, "at": at.isoformat()})
        incident = self.get(row["id"])
        self._notify("cleared", incident)
        return incident

    def acknowledge(self, ident: int, who: str) -> Incident:
        incident = self.get(ident)
        if incident.state != "open":
            raise IncidentError(f"incident #{ident} is {incident.state}: only an open incident is acknowledged")
        return self._move(incident, "acknowledged", who, acknowledged_by=who,
                          acknowledged_at=dt.datetime.now(dt.UTC))  # fmt: skip

    def resolve(self, ident: int, who: str, note: str) -> Incident:
        incident = self.get(ident)
        if incident.state == "resolved":
            raise IncidentError(f"incident #{ident} was resolved by {incident.resolved_by} at {incident.resolved_at}")
        if not note or not note.strip():
            raise IncidentError(f"resolving incident #{ident} needs a note: what was found and done (--note)")
        now = dt.datetime.now(dt.UTC)
        ack = {} if incident.acknowledged_at else {"acknowledged_by": who, "acknowledged_at": now}
        return self._move(incident, "resolved", who, resolved_by=who, resolved_at=now, note=note.strip(), **ack)

    def _move(self, incident: Incident, state: str, who: str, **values) -> Incident:
        t = self.table
        with self.engine.begin() as con:
            moved = con.execute(t.update().where(t.c.id == incident.id, t.c.state == incident.state)
                                .values(state=state, **values)).rowcount  # fmt: skip
        if not moved:  # someone else moved it meanwhile
            raise IncidentError(f"incident #{incident.id} changed while you were moving it; look again")
        self.ledger.append(f"incident.{state}", f"incident/{incident.id}", {"by": who, "cause": incident.cause,
                                                                           "note": values.get("note")})  # fmt: skip
        moved = self.get(incident.id)
        self._notify(state, moved)
        return moved

    def _notify(self, event: str, incident: Incident) -> None:
        """Tell every notifier; one that fails is logged and audited, never undoes the transition."""
        for notifier in self.notifiers:
            try:
                notifier.notify(event, incident)
            except Exception as exc:  # noqa: BLE001 (a notifier's failure must not lose the incident)
                log.error("incident #%s %s: %s failed: %s", incident.id, event, notifier, exc)
                self.ledger.append("incident.notification_failed", f"incident/{incident.id}",
                                   {"event": event, "notifier": str(notifier), "error": str(exc)[:500]})  # fmt: skip

    def get(self, ident: int) -> Incident:
        with self.engine.connect() as con:
            row = con.execute(sa.select(self.table).where(self.table.c.id == ident)).mappings().first()
        if row is None:
            raise IncidentError(f"there is no incident #{ident} (`platform incidents list --all`)")
        return _incident(row)

    def explaining(self, dag_run: str) -> list[Incident]:
        """The unresolved incidents the DAG run `<dag id>/<run id>` opened or repeated itself."""
        t, runs = self.table, self.runs
        with self.engine.connect() as con:
            query = sa.select(t).join(runs, runs.c.incident == t.c.id)
            rows = con.execute(query.where(runs.c.dag_run == dag_run, t.c.state != "resolved").order_by(t.c.id))
            rows = rows.mappings()
            return [_incident(r) for r in rows]

    def list(self, states: tuple[str, ...] = ("open", "acknowledged")) -> list[Incident]:
        t = self.table
        with self.engine.connect() as con:
            rows = con.execute(sa.select(t).where(t.c.state.in_(states)).order_by(t.c.first_seen, t.c.id)).mappings()
            return [_incident(r) for r in rows]

    def report(self) -> dict[str, dict]:
        """Per use case: incidents, open ones, mean time to acknowledge and to resolve (seconds, of those that were)."""
        out: dict[str, dict] = {}
        for incident in self.list(STATES):
            entry = out.setdefault(incident.usecase, {"incidents": 0, "unresolved": 0, "_ack": [], "_res": []})
            entry["incidents"] += 1
            entry["unresolved"] += incident.state != "resolved"
            if incident.acknowledged_at:
                entry["_ack"].append((incident.acknowledged_at - incident.first_seen).total_seconds())
            if incident.resolved_at:
                entry["_res"].append((incident.resolved_at - incident.first_seen).total_seconds())
        for entry in out.values():
            ack, res = entry.pop("_ack"), entry.pop("_res")
            entry["mtta_s"] = sum(ack) / len(ack) if ack else None
            entry["mttr_s"] = sum(res) / len(res) if res else None
        return out


def alert_cause(alert: dict) -> str:
    labels = alert["labels"]
    return f"alert:{labels.get('alertname', '?')}:{labels.get('usecase', 'platform')}:{labels.get('objective', '')}"


def from_alert(incidents: Incidents, alert: dict, still_firing: set[str] = frozenset()) -> Incident | None:
    """An Alertmanager alert (webhook format) as an incident: opened or repeated while firing, cleared once
    resolved, unless another alert of the same cause (the objective's slower burn) is in `still_firing`."""
    labels, notes = alert["labels"], alert.get("annotations") or {}
    usecase, cause = labels.get("usecase", "platform"), alert_cause(alert)
    at = _parse(alert.get("endsAt") if alert["status"] == "resolved" else alert.get("startsAt"))
    if alert["status"] == "resolved":
        return None if cause in still_firing else incidents.cleared(cause, at)
    return incidents.seen(cause, at, kind=labels.get("alertname", "?"), usecase=usecase,
                          owner=labels.get("owner", "platform"),
                          severity=labels.get("severity", "ticket"), summary=notes.get("summary", ""),
                          runbook_url=notes.get("runbook_url", ""))  # fmt: skip


def platform_event(settings: Settings, kind: str, cause: str, usecase: str, summary: str,
                   dag_run: str | None = None) -> Incident | None:  # fmt: skip
    """A failure the platform saw itself (EVENT_KINDS) as an incident, owned by the use case's owner; None
    when it could not be recorded (logged loudly: the caller's own failure is what it must still raise).
    `dag_run`: the Airflow run (`<dag id>/<run id>`) that saw it; that run's failure opens nothing more."""
    from pipelines.usecases.spec import available, resolve_usecase

    event = EVENT_KINDS[kind]
    try:
        owner = resolve_usecase(settings, usecase).owner if usecase in available(settings.usecases_dir) else "platform"
        return Incidents(settings).seen(cause, dt.datetime.now(dt.UTC), kind=kind, usecase=usecase, owner=owner,
                                        severity=event.severity, summary=summary[:1000],
                                        runbook_url=f"{RUNBOOKS}/{event.runbook}", dag_run=dag_run)  # fmt: skip
    except Exception:  # noqa: BLE001 (an incident store that is down must not hide the failure it reports)
        log.exception("INCIDENT NOT RECORDED: %s %s: %s", kind, cause, summary)
        return None


def usecase_of(settings: Settings, dag_id: str) -> str:
    """The use case a DAG id belongs to (`<use case>_<kind>`), or "platform"."""
    from pipelines.usecases.spec import available

    names = sorted((n for n in available(settings.usecases_dir) if dag_id.startswith(f"{n}_")), key=len)
    return names[-1] if names else "platform"


def _parse(text: str | None) -> dt.datetime:
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None
    except ValueError:
        moment = None
    if moment is None or moment.year < 2000:  # Alertmanager's zero time for "not ended"
        return dt.datetime.now(dt.UTC)
    return _utc(moment)


def _utc(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _worse(a: str, b: str) -> str:
    return "page" if "page" in (a, b) else a


def _incident(row) -> Incident:
    values = dict(row)
    for name in ("first_seen", "last_seen", "cleared_at", "acknowledged_at", "resolved_at"):
        if values[name] is not None:
            values[name] = _utc(values[name])
    return Incident(**values)
