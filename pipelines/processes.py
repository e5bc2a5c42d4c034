"""Local server processes the platform starts (OpenBao, Airflow, the model service, the stream processor):
probe and stop."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something accepts TCP connections on host:port."""
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((host, port)) == 0


def stop(process: subprocess.Popen | None, timeout_s: float = 30) -> None:
    """SIGTERM, then SIGKILL if it has not exited within the timeout."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def stop_groups(processes: list[subprocess.Popen], timeout_s: float = 60) -> None:
    """SIGTERM each process's group (it leads one: started with start_new_session), so that what it started
    (a scheduler's LocalExecutor workers and log server, a Celery pool) stops with it; SIGKILL whatever of a
    group is left after `timeout_s`."""
    for process in processes:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    for process in processes:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=max(deadline - time.monotonic(), 0.1))
        while _group_alive(process.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def wait_until_ready(process: subprocess.Popen, ready: Callable[[], bool], what: str, log, timeout_s: float,
                     error: type[Exception]) -> None:  # fmt: skip
    """Poll `ready()` while `process` runs; `error` naming `what` and its log when it exits or takes too long."""
    deadline = time.monotonic() + timeout_s
    while True:
        if process.poll() is not None:
            raise error(f"{what} exited ({process.returncode}); see {log}")
        if time.monotonic() > deadline:
            raise error(f"{what} was not ready within {timeout_s:.0f} s; see {log}")
        if ready():
            return
        time.sleep(0.3)
