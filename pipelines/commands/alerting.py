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
