"""The platform's container image, built here with podman (or docker where a user has it) from the repository's
Dockerfile, without any container registry.

No registry needs to be reachable: when no base image is given, the base is Debian bookworm made with
`debootstrap --variant=minbase` (its Python is 3.11) and imported as `localhost/platform-base:bookworm`, once (the
engine's image store keeps it). What the build downloads comes from the package registries the host reaches:
the host's CA bundle (`SSL_CERT_FILE`, for a TLS-intercepting egress proxy) enters the build as a secret mount,
never a layer, and the folder `make setup` finds torch's CPU wheel in (`UV_FIND_LINKS`) is mounted read-only.
With podman the `runc` runtime is used where installed, with explicit ulimits (some sandboxes refuse crun and
podman's default ulimits). An unchanged tree rebuilds from the engine's layer cache."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from pipelines.errors import PlatformError
from pipelines.settings import REPO_ROOT

BASE_IMAGE = "localhost/platform-base:bookworm"
BASE_PACKAGES = ("python3", "python3-venv", "ca-certificates", "libgomp1")  # bookworm's python3 is 3.11
DEBIAN_MIRROR = "http://deb.debian.org/debian"
IMAGE = "localhost/flightops-platform"
TARGETS = {"runtime": "dev", "serving": "serving-dev"}  # Dockerfile stage -> tag
ULIMITS = ("--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024")
INPUTS_LABEL = "org.flightops.build-inputs"
# What the Dockerfile's COPY instructions read: files at the top, then whole folders (.dockerignore's caches aside).
INPUT_FILES = ("Dockerfile", ".dockerignore", "pyproject.toml", "bentofile.yaml")
INPUT_FOLDERS = ("pipelines", "serving", "dags", "plugins", "dbt", "expectations", "feature_repo", "usecases")


class ImageError(PlatformError):
    """The image cannot be built here; the message names what is missing and the fix."""


@dataclass(frozen=True)
class Engine:
    """A container engine's command line: podman (runc where installed) or docker."""

    name: str
    command: tuple[str, ...]

    def run_flags(self) -> tuple[str, ...]:
        return ULIMITS if self.name == "podman" else ()

    def __call__(self, *args: str, **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run([*self.command, *args], check=False, **kwargs)

    def image_exists(self, image: str) -> bool:
        return self("image", "inspect", image, capture_output=True).returncode == 0

    def inspect(self, image: str, field: str) -> str:
        found = self("image", "inspect", "--format", f"{{{{{field}}}}}", image, capture_output=True, text=True)
        return found.stdout.strip() if found.returncode == 0 else ""

    def image_size(self, image: str) -> int:
        return int(self.inspect(image, ".Size") or 0)


def engine(preferred: str | None = None) -> Engine:
    """podman (Debian's, with runc where installed), else docker; ImageError naming what to install."""
    names = [preferred] if preferred else ["podman", "docker"]
    for name in names:
        binary = shutil.which(name)
        if binary is None:
            continue
        if name == "podman" and shutil.which("runc"):
            return Engine(name, (binary, "--runtime", "runc"))
        return Engine(name, (binary,))
    raise ImageError(f"no container engine: {' or '.join(names)} is not installed (Debian: `apt-get install podman "
                     f"runc debootstrap`, which `make image` runs as root; or install Docker)")  # fmt: skip


def base_image(built_with: Engine, work_dir: Path) -> str:
    """`localhost/platform-base:bookworm`, made with debootstrap and imported unless the engine has it."""
    if built_with.image_exists(BASE_IMAGE):
        return BASE_IMAGE
    debootstrap = shutil.which("debootstrap") or ("/usr/sbin/debootstrap" if Path("/usr/sbin/debootstrap").exists()
                                                  else None)  # fmt: skip
    if debootstrap is None or os.geteuid() != 0:
        raise ImageError("no base image: making one needs debootstrap, as root (`apt-get install debootstrap`); "
                         "or give a Python 3.11 bookworm image that your engine can pull, e.g. "
                         "`make image BASE=python:3.11-slim-bookworm`")  # fmt: skip
    work_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=work_dir, prefix="bookworm-") as root:
        made = subprocess.run([debootstrap, "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}", "bookworm",
                               root, DEBIAN_MIRROR], capture_output=True, text=True, check=False)  # fmt: skip
        if made.returncode:
            raise ImageError(f"debootstrap could not make bookworm from {DEBIAN_MIRROR}:\n{made.stdout[-2000:]}")
        tar = subprocess.Popen(["tar", "-C", root, "-c", "."], stdout=subprocess.PIPE)
        imported = built_with("import", "-", BASE_IMAGE, stdin=tar.stdout, capture_output=True, text=True)
        tar.stdout.close()
        tar.wait()
        if imported.returncode or tar.returncode:
            raise ImageError(f"importing the bookworm root as {BASE_IMAGE} failed: {imported.stderr[-2000:]}")
    return BASE_IMAGE


def build_inputs(context: Path, *args: str) -> str:
    """SHA-256 of everything a build reads (the files its COPY instructions take, and `args`: the base image's id,
    the build arguments): an image labelled with it needs no build."""
    digest = hashlib.sha256("\0".join(args).encode())
    paths = [context / name for name in INPUT_FILES] + sorted(context.glob("requirements*.txt"))
    for folder in INPUT_FOLDERS:
        paths += sorted(p for p in (context / folder).rglob("*") if p.is_file() and "__pycache__" not in p.parts
                        and not any(part.endswith(".egg-info") for part in p.parts))  # fmt: skip
    for path in paths:
        if path.is_file():
            digest.update(f"\0{path.relative_to(context)}\0".encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class BuiltImage:
    image: str
    target: str
    base: str
    size_bytes: int
    seconds: float
    log: str
    cached: bool  # the image already had this tree's build inputs: no build ran

    def render(self) -> str:
        how = "unchanged, not rebuilt" if self.cached else "built"
        return (f"{self.image} ({self.target} stage, from {self.base}): {self.size_bytes / 1024**3:.2f} GiB, "
                f"{how} in {self.seconds:.0f} s")  # fmt: skip

    def as_dict(self) -> dict:
        return asdict(self)


def build(
    target: str = "runtime",
    base: str | None = None,
    engine_name: str | None = None,
    work_dir: Path = REPO_ROOT / "var" / "container",
    context: Path = REPO_ROOT,
) -> BuiltImage:
    """Build the Dockerfile's `target` stage (runtime: every role; serving: the model service only) as
    `localhost/flightops-platform:<dev|serving-dev>`; ImageError naming the failing step and the fix."""
    if target not in TARGETS:
        raise ImageError(f"unknown image target {target!r}: one of {sorted(TARGETS)}")
    built_with = engine(engine_name)
    started = time.perf_counter()
    base = base or base_image(built_with, work_dir)
    image = f"{IMAGE}:{TARGETS[target]}"
    args = ["build", "--target", target, "--tag", image, "--build-arg", f"PYTHON_IMAGE={base}"]
    if built_with.name == "podman":
        # docker format: the OCI format has no HEALTHCHECK; the build reaches the registries as the host does
        args += ["--format", "docker", "--network", "host", *ULIMITS]
        wheels = Path(os.environ.get("UV_FIND_LINKS", "/opt/wheels"))
        if wheels.is_dir():  # torch's CPU wheel where make setup finds it, instead of the PyTorch index
            args += ["--volume", f"{wheels}:/wheels:ro", "--build-arg", "TORCH_FIND_LINKS=/wheels"]
    inputs = build_inputs(context, target, built_with.inspect(base, ".Id") or base, *args)
    log = work_dir / f"build-{target}.log"
    if built_with.inspect(image, f'index .Labels "{INPUTS_LABEL}"') == inputs:
        return BuiltImage(image, target, base, built_with.image_size(image), time.perf_counter() - started,
                          str(log), cached=True)  # fmt: skip
    ca_bundle = Path(os.environ.get("SSL_CERT_FILE", "/etc/ssl/certs/ca-certificates.crt"))
    if ca_bundle.is_file():  # a secret: not an input of the image
        args += ["--secret", f"id=ca,src={ca_bundle}"]
    args += ["--label", f"{INPUTS_LABEL}={inputs}"]
    work_dir.mkdir(parents=True, exist_ok=True)
    with log.open("w") as out:
        done = built_with(*args, str(context), stdout=out, stderr=subprocess.STDOUT)
    if done.returncode:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-40:])
        raise ImageError(f"`{built_with.name} build --target {target}` failed (whole log: {log}):\n{tail}")
    return BuiltImage(image, target, base, built_with.image_size(image), time.perf_counter() - started, str(log),
                      cached=False)  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description="Build the platform's container image (Dockerfile) here.")
    parser.add_argument("--target", choices=sorted(TARGETS), default="runtime")
    parser.add_argument("--base", help="a Python 3.11 bookworm image the engine has or can pull (default: one "
                                       "made with debootstrap)")  # fmt: skip
    parser.add_argument("--engine", choices=["podman", "docker"])
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    try:
        result = build(args.target, args.base, args.engine)
    except ImageError as exc:
        raise SystemExit(str(exc)) from None
    print(json.dumps(result.as_dict()) if args.json else result.render())


if __name__ == "__main__":
    main()
