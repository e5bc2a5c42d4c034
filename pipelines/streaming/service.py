"""The stream processor as a service: `platform stream process <usecase>` in the foreground, or a process
group of its own for `make run`, `make up` and the tests (`running_processor`)."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from pipelines.errors import PlatformError
from pipelines.processes import port_open, stop_groups, wait_until_ready
from pipelines.settings import REPO_ROOT, Settings, settings_environment
from pipelines.usecases.spec import UseCase


class ProcessorFailed(PlatformError):
    """The stream processor did not start or stopped; the message says where its log is."""


def processor_ports(settings: Settings, usecases: list[UseCase]) -> dict[str, int]:
    """Where `make up` runs each streamed use case's processor: the settings' port, then the next ones."""
    streamed = [u.name for u in usecases if u.streaming is not None]
    return {name: settings.stream_processor_port + i for i, name in enumerate(streamed)}


def run_processor(settings: Settings, usecase: UseCase, consumer: str = "processor-1") -> None:
    """Process the use case's streams until SIGTERM or SIGINT, serving /healthz and /metrics meanwhile."""
    from pipelines.streaming.processor import StreamProcessor, serve_health

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    processor = StreamProcessor(settings, usecase, consumer)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    server = serve_health(processor, settings.stream_processor_port)
    logging.getLogger(__name__).info("processing %s on %s, health on 127.0.0.1:%d", usecase.name,
                                     settings.stream_broker_url, settings.stream_processor_port)  # fmt: skip
    try:
        processor.run(stop)
    finally:
        server.shutdown()


def health(port: int, timeout_s: float = 5) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=timeout_s) as answer:  # nosec B310 # loopback http only
        return json.loads(answer.read())


@contextlib.contextmanager
def running_processor(
    settings: Settings, usecase: UseCase, *, log: Path, env: dict[str, str] | None = None, timeout_s: float = 120
) -> Iterator[subprocess.Popen]:
    """`platform stream process` in a process group of its own until the block exits; yields the process once
    /healthz answers. `env`: the Vault identity and anything else the child needs beyond the settings."""
    port = settings.stream_processor_port
    if port_open(port):
        raise ProcessorFailed(f"127.0.0.1:{port} is already in use (another stream processor?); stop it and retry")
    environment = {**os.environ, **settings_environment(settings), **(env or {})}
    log.parent.mkdir(parents=True, exist_ok=True)
    command = [str(Path(sys.executable).with_name("platform")), "stream", "process", usecase.name]
    with log.open("a") as output:
        process = subprocess.Popen(command, cwd=REPO_ROOT, env=environment, stdout=output, stderr=subprocess.STDOUT,
                                   start_new_session=True)  # fmt: skip

    def answering() -> bool:
        try:
            health(port, timeout_s=2)
        except OSError:
            return False
        return True

    try:
        wait_until_ready(process, answering, "the stream processor (/healthz)", log, timeout_s, ProcessorFailed)
        yield process
    finally:
        stop_groups([process], timeout_s=30)
