"""Prometheus and Alertmanager on loopback, for `make up`: Prometheus scrapes the model service, the platform
exporter and the stream processors and evaluates the rules generated from the specs; Alertmanager routes what
fires to the platform's webhook receiver, which records every notification (firing and resolved) in the
audit ledger and in `<data root>/alerts/notifications.jsonl`.

Debian's `prometheus` and `prometheus-alertmanager` packages (`make monitoring-tools`).
"""

from __future__ import annotations

import contextlib
import http.server
import json
import shutil
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

from pipelines.errors import PlatformError
from pipelines.processes import stop, wait_until_ready
from pipelines.settings import Settings
from pipelines.usecases.spec import UseCase

BINARIES = {"prometheus": "prometheus", "alertmanager": "prometheus-alertmanager"}


class MonitoringUnavailable(PlatformError):
    """Prometheus or Alertmanager is not installed, or did not start; the message says which and why."""


@dataclass(frozen=True)
class MonitoringStack:
    prometheus: str
    alertmanager: str
    exporter: str
    receiver: str


def prometheus_config(settings: Settings, usecases: list[UseCase], rules: Path, serving: bool = True,
                      interval: str = "15s") -> dict:  # fmt: skip
    """Scrape the model service (when `serving`: one runs on the serving port), the exporter and a stream
    processor per streamed use case every `interval`, evaluate the rules as often; alert Alertmanager."""
    from pipelines.streaming.service import processor_ports

    processors = [f"127.0.0.1:{port}" for port in processor_ports(settings, usecases).values()]
    jobs = {"model_service": [f"127.0.0.1:{settings.serving_port}"] if serving else [],
            "platform_exporter": [f"127.0.0.1:{settings.exporter_port}"], "stream_processor": processors}  # fmt: skip
    return {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "rule_files": [str(rules)],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{settings.alertmanager_port}"]}]}]},
        "scrape_configs": [{"job_name": job, "static_configs": [{"targets": targets}]}
                           for job, targets in jobs.items() if targets],
    }  # fmt: skip


def alertmanager_config(settings: Settings, wait: str = "10s") -> dict:
    """Everything to the platform's receiver, grouped per alert, use case and objective, resolutions included."""
    return {
        "route": {"receiver": "platform", "group_by": ["alertname", "usecase", "objective"], "group_wait": wait,
                  "group_interval": wait, "repeat_interval": "4h"},
        "receivers": [{"name": "platform", "webhook_configs": [
            {"url": f"http://127.0.0.1:{settings.alert_receiver_port}/alerts", "send_resolved": True}]}],
    }  # fmt: skip


def record_notification(settings: Settings, payload) -> int:
    """One Alertmanager webhook notification: each of its alerts as a ledger record (`alert.firing` or
    `alert.resolved`, subject `<use case>/<alert>`), an incident opened, repeated or cleared
    (pipelines/alerting/incidents.py) and, last, a line of notifications.jsonl; returns how many it recorded.
    Alertmanager delivers at least once (it retries a delivery it gave up on, and repeats a firing group every
    repeat_interval): an alert whose fingerprint, status and times are already in notifications.jsonl is not
    recorded again, and a delivery that failed part way leaves no line, so its retry records it whole.
    ValueError naming what is wrong for a payload that is not Alertmanager's."""
    from pipelines.security.audit import audit_ledger

    alerts = payload.get("alerts") if isinstance(payload, dict) else None

    def valid(alert) -> bool:
        return isinstance(alert, dict) and isinstance(alert.get("labels"), dict) and alert.get("status") in (
            "firing", "resolved")  # fmt: skip

    if not isinstance(alerts, list) or not all(valid(a) for a in alerts):
        raise ValueError("not an Alertmanager webhook notification: expected {'alerts': [{'status', 'labels', ...}]}")
    from pipelines.alerting.incidents import Incidents, alert_cause, from_alert

    ledger, incidents = audit_ledger(settings), Incidents(settings)
    # Alertmanager sends a group's alerts together (grouped by alert, use case and objective: one cause): the
    # 1-hour burn resolving while the 6-hour one still fires does not clear the incident.
    firing = {alert_cause(a) for a in alerts if a["status"] == "firing"}
    folder = settings.data_root / "alerts"
    folder.mkdir(parents=True, exist_ok=True)
    log_file = folder / "notifications.jsonl"
    with _RECEIVING:
        lines = log_file.read_text().splitlines() if log_file.exists() else []
        known = {_delivery(json.loads(line)) for line in lines}
        recorded = 0
        for alert in alerts:
            labels, notes = alert["labels"], alert.get("annotations") or {}
            subject = f"{labels.get('usecase', 'platform')}/{labels.get('alertname', '?')}"
            details = {"severity": labels.get("severity"), "objective": labels.get("objective"),
                       "labels": labels, "summary": notes.get("summary"), "runbook_url": notes.get("runbook_url"),
                       "starts_at": alert.get("startsAt"), "ends_at": alert.get("endsAt"),
                       "fingerprint": alert.get("fingerprint")}  # fmt: skip
            line = {"status": alert["status"], "subject": subject, **details}
            if _delivery(line) in known:
                continue
            from_alert(incidents, alert, firing)
            ledger.append(f"alert.{alert['status']}", subject, details, actor="alertmanager")
            with log_file.open("a") as out:  # last: the line says all of it is recorded
                out.write(json.dumps(line) + "\n")
            known.add(_delivery(line))
            recorded += 1
    return recorded


_RECEIVING = threading.Lock()  # the receiver is threaded; Alertmanager may retry while the first delivery runs


def _delivery(line: dict) -> tuple:
    """What makes two deliveries the same notification of the same alert."""
    return line.get("fingerprint") or line["subject"], line["status"], line.get("starts_at"), line.get("ends_at")


def serve_receiver(settings: Settings, port: int) -> http.server.ThreadingHTTPServer:
    """The webhook receiver on 127.0.0.1:`port` (POST /alerts), in a daemon thread."""
    max_body = 1024 * 1024

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's naming)
            length = int(self.headers.get("Content-Length") or 0)
            if self.path != "/alerts":
                return self._answer(404, {"error": "POST Alertmanager's notifications to /alerts"})
            if length > max_body:
                return self._answer(413, {"error": f"a notification of {length} bytes exceeds {max_body}"})
            try:
                count = record_notification(settings, json.loads(self.rfile.read(length) or b"null"))
            except ValueError as exc:
                return self._answer(400, {"error": str(exc)})
            self._answer(200, {"recorded": count})

        def _answer(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):  # the ledger says what matters
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True, name="alert-receiver").start()
    return server


def _ready(port: int) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=2) as answer:  # nosec B310 # loopback
            return answer.status == 200
    except OSError:
        return False


@contextlib.contextmanager
def running_monitoring(settings: Settings, usecases: list[UseCase], wait: str = "10s", serving: bool = True,
                       interval: str = "15s") -> Iterator[MonitoringStack]:  # fmt: skip
    """The exporter, the receiver, Prometheus and Alertmanager for the block, on loopback (`serving`: scrape
    the model service too; `interval`: Prometheus's scrape and evaluation; `wait`: Alertmanager's grouping)."""
    from pipelines.alerting.exporter import serve_exporter
    from pipelines.alerting.rules import write_rules

    binaries = {name: shutil.which(binary) for name, binary in BINARIES.items()}
    missing = sorted(BINARIES[n] for n, path in binaries.items() if path is None)
    if missing:
        raise MonitoringUnavailable(f"{missing} not installed: `make monitoring-tools` (Debian's packages, as root)")
    home = settings.data_root / "prometheus"
    rules = write_rules(usecases, home / "platform-rules.yml")
    (home / "prometheus.yml").write_text(
        yaml.safe_dump(prometheus_config(settings, usecases, rules, serving, interval), sort_keys=False)
    )
    (home / "alertmanager.yml").write_text(yaml.safe_dump(alertmanager_config(settings, wait), sort_keys=False))
    commands = {
        "prometheus": [binaries["prometheus"], f"--config.file={home / 'prometheus.yml'}",
                       f"--storage.tsdb.path={home / 'tsdb'}",
                       f"--web.listen-address=127.0.0.1:{settings.prometheus_port}"],
        "alertmanager": [binaries["alertmanager"], f"--config.file={home / 'alertmanager.yml'}",
                         f"--storage.path={home / 'alertmanager'}", "--cluster.listen-address=",
                         f"--web.listen-address=127.0.0.1:{settings.alertmanager_port}"],
    }  # fmt: skip
    ports = {"prometheus": settings.prometheus_port, "alertmanager": settings.alertmanager_port}
    servers = [serve_exporter(settings, usecases, settings.exporter_port),
               serve_receiver(settings, settings.alert_receiver_port)]  # fmt: skip
    processes = []
    try:
        for name, command in commands.items():
            log = home / f"{name}.log"
            with log.open("a") as output:
                processes.append(subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT))
            wait_until_ready(processes[-1], lambda p=ports[name]: _ready(p), name, log, 60, MonitoringUnavailable)
        yield MonitoringStack(f"http://127.0.0.1:{settings.prometheus_port}",
                              f"http://127.0.0.1:{settings.alertmanager_port}",
                              f"http://127.0.0.1:{settings.exporter_port}/metrics",
                              f"http://127.0.0.1:{settings.alert_receiver_port}/alerts")  # fmt: skip
    finally:
        for process in processes:
            stop(process)
        for server in servers:
            server.shutdown()
