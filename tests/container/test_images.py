"""The images `make image` builds, run: the slim serving image answers from the host as the host's own service does,
given only the OpenBao address, its AppRole and the registry mounted read-only; both images run as uid 10001 with
a passing HEALTHCHECK; the serving image has none of the training and orchestration stack; no file of the platform's
own in either image holds a secret the repository's baseline does not already know."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from pipelines.security.vault import issue_credentials
from pipelines.settings import REPO_ROOT, settings_environment
from serving.auth import create_key
from serving.local import wait_ready
from tests.conftest import free_port
from tests.container.conftest import IMAGE_ROOT, container, container_environment, listening, run_in
from tests.e2e.conftest import auth, flight, serve

pytestmark = pytest.mark.container


def _digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}  # fmt: skip


@pytest.fixture
def served_from_image(images, engine, champion, openbao, tmp_path):
    """The serving image on a free port of the host's network, as the serving AppRole, its data root a copy of the
    built platform's (mounted where it is) and the registry (the champion's store) mounted read-only."""
    settings, version = champion
    store = Path(settings.artifact_store_uri.removeprefix("file://"))
    data = tmp_path / "var"
    shutil.copytree(settings.data_root, data)
    subprocess.run(["chmod", "-R", "a+rwX", str(data)], check=True)  # the container's uid 10001 writes its log
    # the registry's files are its owner's alone (0600): owned by the service's uid, as a volume with fsGroup is
    subprocess.run(["chown", "-R", "10001:10001", str(store)], check=True)
    role_id, secret_id = issue_credentials(openbao.root, "serving")
    env = container_environment(settings_environment(
        settings.model_copy(update={"data_root": data, "artifact_store_uri": "file:///registry"})))  # fmt: skip
    for name in ("PLATFORM_VAULT_EVALUATION_ROLE_ID", "PLATFORM_VAULT_TOKEN"):
        env.pop(name, None)  # the service has its own identity only
    env.update(PLATFORM_VAULT_ROLE_ID=role_id, PLATFORM_VAULT_SECRET_ID=secret_id)
    key = create_key(openbao.root, "consumer-container", ["predict"])  # before the start: keys are read then
    port = free_port()
    env["PLATFORM_HEALTH_URL"] = f"http://127.0.0.1:{port}/readyz"  # the HEALTHCHECK's probe, on the port chosen
    before = _digests(store)
    mounts = [f"{data}:{data}", f"{store}:/registry:ro"]
    with container(engine, images["serving"].image, env, mounts, ["--host", "127.0.0.1", "--port", str(port)],
                   tmp_path / "service.log") as name:  # fmt: skip
        listening(engine, name, port)
        yield settings, version, f"http://127.0.0.1:{port}", name, key
    assert _digests(store) == before, "the registry changed under a read-only mount"


def test_the_serving_image_answers_from_the_host_as_the_host_service_does(served_from_image, engine, openbao,
                                                                          tmp_path):  # fmt: skip
    settings, version, base, name, key = served_from_image
    status = wait_ready(base, timeout_s=240)
    assert status["usecases"]["flight_delay"]["variants"] == [{"name": "champion", "version": version, "weight": 100.0}]
    body = {"flights": [flight(n, scheduled_departure=f"2013-01-05T{6 + n:02d}:30:00") for n in range(6)]}
    answer = httpx.post(f"{base}/predict", json=body, headers=auth(key), timeout=60)
    assert answer.status_code == 200, answer.text
    from_image = answer.json()["predictions"]
    assert [p["model_version"] for p in from_image] == [version] * 6
    with serve(settings, openbao, tmp_path) as host:
        wait_ready(host)
        from_host = httpx.post(f"{host}/predict", json=body, headers=auth(key), timeout=60).json()["predictions"]
    assert [p["probability"] for p in from_image] == pytest.approx([p["probability"] for p in from_host], abs=1e-6)
    assert len({p["probability"] for p in from_image}) > 1, "the departure hour's features reached the model"
    assert httpx.post(f"{base}/predict", json=body, timeout=30).status_code == 401  # no key, no answer
    # the registry is read-only inside; the service runs as the image's user and its HEALTHCHECK passes
    assert run_in(engine, name, "sh", "-c", "touch /registry/x").returncode != 0
    assert run_in(engine, name, "python", "-c", "import os; print(os.getuid(), os.getgid())").stdout.split() == [
        "10001", "10001"]  # fmt: skip
    if engine.name == "podman":
        assert engine("healthcheck", "run", name, capture_output=True).returncode == 0


def test_the_serving_image_is_slim_and_the_full_image_has_every_role(images, engine):
    names = ("torch", "airflow", "dbt.cli", "great_expectations", "xgboost", "onnxruntime", "feast", "bentoml")
    probe = f"import importlib.util as u, json; print(json.dumps({{m: bool(u.find_spec(m)) for m in {names}}}))"

    def modules(tag: str) -> dict[str, bool]:
        found = engine("run", "--rm", *engine.run_flags(), "--entrypoint", "python", tag, "-c", probe,
                       capture_output=True, text=True)  # fmt: skip
        assert found.returncode == 0, found.stderr
        return json.loads(found.stdout)

    slim, full = modules(images["serving"].image), modules(images["runtime"].image)
    assert slim == {"torch": False, "airflow": False, "dbt.cli": False, "great_expectations": False, "xgboost": False,
                    "onnxruntime": True, "feast": True, "bentoml": True}  # fmt: skip
    assert all(full.values()), full
    assert images["serving"].size_bytes * 3 < images["runtime"].size_bytes
    for built in images.values():
        user = engine("image", "inspect", "--format", "{{.Config.User}}", built.image, capture_output=True, text=True)
        assert user.stdout.strip() == "10001"


def _exported(engine, tag: str, into: Path, paths: tuple[str, ...]) -> Path:
    """The image's `paths` (its virtualenvs left out) as files under `into`."""
    into.mkdir()
    exported = subprocess.run(
        [*engine.command, "run", "--rm", *engine.run_flags(), "--user", "0", "--entrypoint", "tar", tag, "-c", "-C",
         "/", "--ignore-failed-read", "--exclude=opt/platform/.venv", "--exclude=opt/platform/.venv-drift", *paths],
        capture_output=True, check=False)  # fmt: skip
    assert exported.returncode == 0, exported.stderr.decode()[-2000:]
    subprocess.run(["tar", "-x", "-C", str(into)], input=exported.stdout, check=True)
    return into


@pytest.mark.parametrize("target", ["serving", "runtime"])
def test_no_file_the_image_adds_holds_an_unknown_secret(images, engine, target, tmp_path):
    """detect-secrets over what the image adds to its base outside its virtualenvs (the code, /etc, homes, the data
    root): every finding in the code is one the repository's baseline records for the same file, and there are none
    elsewhere. Debian's own files (unchanged from the base) and third-party packages in the virtualenvs (their test
    keys) are not the platform's."""
    paths = ("opt/platform", "etc", "home", "root", "var/lib/platform")
    tree = _exported(engine, images[target].image, tmp_path / "image", paths)
    base = _exported(engine, images[target].base, tmp_path / "base", paths)
    for path in [p for p in tree.rglob("*") if p.is_file() and not p.is_symlink()]:
        same = base / path.relative_to(tree)
        if same.is_file() and not same.is_symlink() and same.read_bytes() == path.read_bytes():
            path.unlink()
    detect_secrets = Path(sys.executable).with_name("detect-secrets")
    scan = subprocess.run([str(detect_secrets), "scan", "--all-files", "."], capture_output=True, text=True,
                          check=True, cwd=tree)  # fmt: skip
    found = json.loads(scan.stdout)["results"]
    baseline = json.loads((REPO_ROOT / ".secrets.baseline").read_text())["results"]
    known = {(path, s["hashed_secret"]) for path, secrets in baseline.items() for s in secrets}
    prefix = f"{IMAGE_ROOT.lstrip('/')}/"
    unknown = [
        (path, s["type"], s["line_number"])
        for path, secrets in found.items()
        for s in secrets
        if not path.startswith(prefix) or (path.removeprefix(prefix), s["hashed_secret"]) not in known
    ]
    assert unknown == []
    assert (tree / IMAGE_ROOT.lstrip("/") / "pipelines" / "cli.py").exists(), "the scan saw the platform's code"
    assert (tree / "etc" / "passwd").exists(), "the scan saw what the image changed in /etc (its user)"
