"""The container images, built once a session with `make image`'s code (an unchanged tree is the engine's cache),
and containers run from them on the host's network: they reach the session's OpenBao, Redis and PostgreSQL on
loopback, as pods reach their cluster's services."""

from __future__ import annotations

import contextlib
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipelines.container import image
from pipelines.processes import port_open
from pipelines.settings import REPO_ROOT
from tests.conftest import require_service
from tests.e2e.conftest import champion, trained_models  # noqa: F401  (shared fixtures)
from tests.integration.conftest import built  # noqa: F401  (a session fixture, shared)

IMAGE_ROOT = "/opt/platform"  # where the Dockerfile puts the repository's code
BUILT: dict[str, image.BuiltImage] = {}


@pytest.fixture(scope="session")
def engine() -> image.Engine:
    try:
        return image.engine()
    except image.ImageError as exc:
        require_service(False, str(exc))


@pytest.fixture(scope="session")
def images(engine) -> dict[str, image.BuiltImage]:
    """Both targets, built (or found in the engine's cache) by the code `make image` runs."""
    for target in ("serving", "runtime"):
        BUILT[target] = image.build(target, engine_name=engine.name)
    return BUILT


def pytest_terminal_summary(terminalreporter) -> None:
    for built_image in BUILT.values():
        terminalreporter.write_line(f"container image: {built_image.render()}")


def container_environment(env: dict[str, str]) -> dict[str, str]:
    """The platform's and Airflow's variables of a host process, with the repository's paths where the image has
    them; data paths stay (the tests mount them at the same place)."""
    keep = {k: v for k, v in env.items() if k.startswith(("PLATFORM_", "AIRFLOW_"))}
    return {k: v.replace(str(REPO_ROOT), IMAGE_ROOT) for k, v in keep.items()}


@contextlib.contextmanager
def container(engine: image.Engine, tag: str, env: dict[str, str], mounts: list[str], command: list[str],
              log: Path, entrypoint: str | None = None) -> Iterator[str]:  # fmt: skip
    """A detached container on the host's network until the block ends (its output then in `log`); its name."""
    name = f"platform-test-{uuid.uuid4().hex[:8]}"
    args = ["run", "-d", "--name", name, "--network", "host", *engine.run_flags()]
    if entrypoint:
        args += ["--entrypoint", entrypoint]
    for mount in mounts:
        args += ["--volume", mount]
    for key, value in env.items():
        args += ["--env", f"{key}={value}"]
    started = engine(*args, tag, *command, capture_output=True, text=True)
    assert started.returncode == 0, started.stderr
    try:
        yield name
    finally:
        logs = engine("logs", name, capture_output=True, text=True)
        log.write_text(logs.stdout + logs.stderr)
        engine("rm", "--force", name, capture_output=True)


def listening(engine: image.Engine, name: str, port: int, timeout_s: float = 180) -> None:
    """Block until the container listens on `port`; AssertionError with its output if it exits or times out."""
    deadline = time.monotonic() + timeout_s
    while not port_open(port):
        running = engine("inspect", "--format", "{{.State.Running}}", name, capture_output=True, text=True)
        if running.stdout.strip() != "true" or time.monotonic() > deadline:
            logs = engine("logs", name, capture_output=True, text=True)
            raise AssertionError(f"{name} does not listen on {port}:\n{(logs.stdout + logs.stderr)[-4000:]}")
        time.sleep(1)


def run_in(engine: image.Engine, name: str, *command: str) -> subprocess.CompletedProcess:
    return engine("exec", name, *command, capture_output=True, text=True)
