"""Run the BentoML service as a local process (for `make run`, `make up` and the tests)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from pipelines.errors import PlatformError
from pipelines.processes import port_open, stop, wait_until_ready
from pipelines.settings import REPO_ROOT, Settings, settings_environment

SERVICE = "serving.service:ModelService"


class ServiceFailed(PlatformError):
    """The model service did not start, or did not become ready; the message says why."""


@contextlib.contextmanager
def running_service(
    settings: Settings,
    role_id: str,
    secret_id: str,
    port: int,
    *,
    log: Path,
    ssl: tuple[Path, Path] | None = None,
    timeout_s: float = 120,
) -> Iterator[str]:
    """`bentoml serve` as the given (serving) AppRole until the block exits; yields its base URL once it listens.

    Readiness is the caller's to check (`/readyz`, `/status`): a service without a servable model
    still starts, and says why it is not ready.
    """
    if port_open(port):  # another process would answer in its place, with its own models and identity
        raise ServiceFailed(
            f"port {port} is already in use on 127.0.0.1 (a model service left running by an earlier run?): stop "
            f"that process (`ss -ltnp | grep :{port}`) or choose another port (PLATFORM_SERVING_PORT)"
        )
    env = {
        **os.environ,
        **settings_environment(settings),
        "PLATFORM_VAULT_ROLE_ID": role_id,
        "PLATFORM_VAULT_SECRET_ID": secret_id,
        "BENTOML_DO_NOT_TRACK": "True",
        "BENTOML_HOME": str(settings.data_root / "bentoml"),
    }
    for name in ("PLATFORM_VAULT_TOKEN", "PLATFORM_VAULT_EVALUATION_ROLE_ID", "PLATFORM_VAULT_EVALUATION_SECRET_ID"):
        env.pop(name, None)  # the service has its own identity only
    args = [
        str(Path(sys.executable).with_name("bentoml")),
        "serve",
        SERVICE,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    if ssl:
        args += ["--ssl-certfile", str(ssl[0]), "--ssl-keyfile", str(ssl[1])]
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as output:
        process = subprocess.Popen(args, cwd=REPO_ROOT, env=env, stdout=output, stderr=subprocess.STDOUT)
    base = f"{'https' if ssl else 'http'}://127.0.0.1:{port}"
    try:  # listening is enough here; readiness is /readyz's to say (wait_ready)
        wait_until_ready(process, lambda: port_open(port), f"bentoml serve on {base}", log, timeout_s, ServiceFailed)
        yield base
    finally:
        stop(process)


def wait_ready(base: str, timeout_s: float = 60, verify: bool | str = True) -> dict:
    """Block until `/readyz` answers 200; returns `/status`. ServiceFailed with the reason otherwise."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if httpx.get(f"{base}/readyz", timeout=5, verify=verify).status_code == 200:
                break
        except httpx.TimeoutException:  # still loading (the socket listens before the app answers)
            pass
        if time.monotonic() > deadline:
            status = httpx.post(f"{base}/status", json={}, timeout=30, verify=verify).json()
            reasons = "; ".join(f"{name}: {u['reason']}" for name, u in status["usecases"].items())
            raise ServiceFailed(f"the model service is not ready: {reasons}")
        time.sleep(0.5)
    return httpx.post(f"{base}/status", json={}, timeout=30, verify=verify).json()
