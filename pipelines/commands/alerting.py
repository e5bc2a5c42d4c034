"""`platform alert-rules` and `platform exporter`: the Prometheus side of operations (pipelines/alerting)."""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path

from pipelines.settings import get_settings
from pipelines.usecases.spec import available, resolve_usecase


def add_commands(commands) -> None:
    rules = commands.add_parser("alert-rules", help="write the Prometheus rules generated from the specs' objectives")
    rules.add_argument("--out", type=Path, help="the rule file (default: <data root>/prometheus/platform-rules.yml)")
    rules.set_defaults(handler=write)
    exporter = commands.add_parser("exporter", help="serve the platform's freshness, gate, drift and ledger metrics")
    exporter.add_argument("--port", type=int, help="default: PLATFORM_EXPORTER_PORT (9464)")
    exporter.set_defaults(handler=export)
    incidents = commands.add_parser("incidents", help="the incidents alerts opened: list, acknowledge, resolve, report")
    actions = incidents.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="open and acknowledged incidents (--all: resolved ones too)")
    listing.add_argument("--all", action="store_true")
    for name, text in (("ack", "acknowledge an open incident: you are working on it"),
                       ("resolve", "resolve an incident, saying what was found and done")):  # fmt: skip
        action = actions.add_parser(name, help=text)
        action.add_argument("id", type=int)
        action.add_argument("--by", help="who (default: PLATFORM_ACTOR, else user@host)")
        if name == "resolve":
            action.add_argument("--note", required=True, help="what was found and done")
    actions.add_parser("report", help="incidents per use case, with the mean time to acknowledge and to resolve")
    incidents.set_defaults(handler=incident_command)


def _usecases(settings):
    return [resolve_usecase(settings, name) for name in available(settings.usecases_dir)]


def write(args: argparse.Namespace) -> None:
    from pipelines.alerting.rules import write_rules

    settings = get_settings()
    path = write_rules(_usecases(settings), args.out or settings.data_root / "prometheus" / "platform-rules.yml")
    print(f"wrote {path} (check it: promtool check rules {path})")


def export(args: argparse.Namespace) -> None:
    from pipelines.alerting.exporter import serve_exporter

    settings = get_settings()
    port = args.port or settings.exporter_port
    server = serve_exporter(settings, _usecases(settings), port)
    print(f"platform exporter: http://127.0.0.1:{port}/metrics (Ctrl-C stops it)", flush=True)
    stopped = threading.Event()
    for stop_signal in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop_signal, lambda *_: stopped.set())
    stopped.wait()
    server.shutdown()


def incident_command(args: argparse.Namespace) -> None:
    from pipelines.alerting.incidents import STATES, Incidents

    settings = get_settings()
    incidents = Incidents(settings)
    who = getattr(args, "by", None) or incidents.ledger.actor
    if args.action == "list":
        found = incidents.list(STATES if args.all else ("open", "acknowledged"))
        print("\n".join(i.render() for i in found) if found else "no incidents")
    elif args.action == "ack":
        print(incidents.acknowledge(args.id, who).render())
    elif args.action == "resolve":
        print(incidents.resolve(args.id, who, args.note).render())
    else:
        report = incidents.report()
        if not report:
            print("no incidents")
        for usecase, entry in sorted(report.items()):
            mtta, mttr = (f"{v / 60:.1f} min" if v is not None else "-" for v in (entry["mtta_s"], entry["mttr_s"]))
            print(
                f"{usecase}: {entry['incidents']} incidents, {entry['unresolved']} unresolved, MTTA {mtta}, MTTR {mttr}"
            )
