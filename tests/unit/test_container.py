"""The container images and the Kubernetes manifests, checked without an engine or a cluster (tests/container
builds and runs the images): the Dockerfile's rules through a parser, the manifests against the Kubernetes API
schemas (kubernetes-validate, strict: unknown fields fail) plus the platform's own rules. Each rule
is also shown to fail on a broken copy."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
import yaml
from dockerfile_parse import DockerfileParser
from kubernetes_validate import utils as k8s

from pipelines.settings import REPO_ROOT

K8S_VERSION = "1.33.0"
MANIFESTS = sorted((REPO_ROOT / "deploy" / "k8s").glob("*.yaml"))
SECRET_NAME = re.compile(r"(PASSWORD|TOKEN|SECRET|_KEY|SALT)", re.IGNORECASE)


def dockerfile_problems(text: str) -> list[str]:
    """What a Dockerfile breaks of the platform's rules (empty: none)."""
    parser = DockerfileParser(fileobj=io.BytesIO(text.encode()))
    instructions = parser.structure
    stages = [i for i in instructions if i["instruction"] == "FROM"]
    problems = []
    if len(stages) < 2:
        problems.append("not multi-stage: build the virtualenvs in one stage, copy them into the runtime stage")
    # The images: the stages named runtime (every role) and serving (the model service), else the last one.
    named = {i["value"].split()[-1].lower(): n for n, i in enumerate(stages) if " as " in i["value"].lower()}
    finals = [name for name in ("serving", "runtime") if name in named] or ["last"]
    bounds = [instructions.index(stage) for stage in stages] + [len(instructions)]
    for name in finals:
        n = named.get(name, len(stages) - 1)
        final = instructions[bounds[n] : bounds[n + 1]] if stages else instructions
        present = [i["instruction"] for i in final]
        users = [i["value"].split(":")[0] for i in final if i["instruction"] == "USER"]
        if not users or users[-1] in ("root", "0"):
            problems.append(f"the {name} stage runs as root: add USER with a non-root uid")
        if "HEALTHCHECK" not in present:
            problems.append(f"no HEALTHCHECK in the {name} stage")
        copied = " ".join(i["value"] for i in final if i["instruction"] == "COPY" and "--from=" in i["value"])
        for venv in ("/.venv ", "/.venv-drift ") if name != "serving" else ("/.venv ",):
            if venv not in copied + " ":
                problems.append(f"the {name} stage does not copy the virtualenv {venv.strip()} from a build stage")
    for i in instructions:
        if i["instruction"] in ("ENV", "ARG"):
            for name in re.findall(r"([A-Za-z_][A-Za-z0-9_]*)=", i["value"]) or [i["value"].split()[0]]:
                if SECRET_NAME.search(name):
                    problems.append(f"{i['instruction']} {name} bakes a secret into the image; read it at run time")
        if i["instruction"] == "RUN" and "apt-get install" in i["value"] and "/var/lib/apt/lists" not in i["value"]:
            problems.append("apt-get install without removing /var/lib/apt/lists in the same layer")
    for image in parser.parent_images:  # ARG defaults substituted; an earlier stage is no base image
        if image.lower() in named:
            continue
        if ":" not in image or image.endswith(":latest"):
            problems.append(f"base image {image} is not pinned to a tag")
    return problems


def test_the_dockerfile_keeps_the_rules():
    assert dockerfile_problems((REPO_ROOT / "Dockerfile").read_text()) == []


@pytest.mark.parametrize(
    ("mutation", "problem"),
    [
        (lambda t: t.replace("USER 10001", "USER root"), "runs as root"),
        (lambda t: re.sub(r"HEALTHCHECK[^\n]*\n[^\n]*\n", "", t), "no HEALTHCHECK"),
        (lambda t: t.replace("COPY --from=build /opt/platform/.venv-drift /opt/platform/.venv-drift\n", ""), "-drift"),
        (lambda t: t.replace("PYTHONUNBUFFERED=1", "PYTHONUNBUFFERED=1 PLATFORM_VAULT_TOKEN=s.abc"), "bakes a secret"),
        (lambda t: t.replace(" && rm -rf /var/lib/apt/lists/*", ""), "apt/lists"),
        (lambda t: t[: t.index("# --- uv")] + t[t.index("# --- runtime") :], "not multi-stage"),
        (lambda t: t.replace("EXPOSE 3000\n", "EXPOSE 3000\nUSER root\n", 1), "the serving stage runs as root"),
        (lambda t: t.replace("python:3.11.7-slim-bookworm", "python"), "not pinned"),
    ],
    ids=["root", "healthcheck", "drift-venv", "secret", "apt-lists", "single-stage", "serving-root", "unpinned"],
)
def test_each_dockerfile_rule_catches_its_breach(mutation, problem):
    broken = mutation((REPO_ROOT / "Dockerfile").read_text())
    assert any(problem in p for p in dockerfile_problems(broken)), dockerfile_problems(broken)


def test_the_dockerignore_keeps_data_venvs_and_git_out():
    ignored = set((REPO_ROOT / ".dockerignore").read_text().split())
    assert {".git", ".venv", ".venv-drift", "var"} <= ignored


def documents(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def manifest_problems(doc: dict) -> list[str]:
    """Schema errors (strict) and the platform's rules for one Kubernetes object."""
    try:
        k8s.validate(doc, K8S_VERSION, strict=True)
    except k8s.ValidationError as error:
        return [f"{doc.get('kind')} {doc.get('metadata', {}).get('name')}: {error.message}"]
    if doc["kind"] != "Deployment":
        return []
    pod = doc["spec"]["template"]["spec"]
    name, problems = doc["metadata"]["name"], []
    if not pod.get("securityContext", {}).get("runAsNonRoot"):
        problems.append(f"{name}: pods may run as root")
    terms = pod.get("affinity", {}).get("nodeAffinity", {}).get("requiredDuringSchedulingIgnoredDuringExecution", {})
    regions = [e for t in terms.get("nodeSelectorTerms", []) for e in t.get("matchExpressions", [])
               if e["key"] == "topology.kubernetes.io/region"]  # fmt: skip
    if not regions or any(e["operator"] != "In" or e["values"] != ["me-central-1"] for e in regions):
        problems.append(f"{name}: not pinned to the UAE region (me-central-1)")
    for container in pod["containers"]:
        if not container.get("resources", {}).get("limits"):
            problems.append(f"{name}/{container['name']}: no resource limits")
        for env in container.get("env", []):
            if SECRET_NAME.search(env["name"]) and "value" in env:
                problems.append(f"{name}/{container['name']}: {env['name']} as a literal; use a secretKeyRef")
    return problems


@pytest.mark.parametrize("path", MANIFESTS, ids=[p.name for p in MANIFESTS])
def test_each_manifest_is_valid_kubernetes_and_keeps_the_rules(path):
    docs = documents(path)
    assert docs
    assert [p for d in docs for p in manifest_problems(d)] == []


def test_the_gpu_pool_requests_a_gpu_and_consumes_only_the_gpu_queue():
    [worker] = documents(REPO_ROOT / "deploy" / "k8s" / "gpu-workers.yaml")
    container = worker["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert container["command"][container["command"].index("--queues") + 1] == "gpu"
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in worker["spec"]["template"][
        "spec"]["tolerations"]  # fmt: skip


def test_each_manifest_rule_catches_its_breach():
    [service, _] = documents(REPO_ROOT / "deploy" / "k8s" / "model-service.yaml")
    pod = service["spec"]["template"]["spec"]
    pod["containers"][0]["readinessProbe"]["httpGett"] = pod["containers"][0]["readinessProbe"].pop("httpGet")
    assert "httpGett" in manifest_problems(service)[0]  # strict schema: an unknown field
    [service, _] = documents(REPO_ROOT / "deploy" / "k8s" / "model-service.yaml")
    pod = service["spec"]["template"]["spec"]
    pod["securityContext"]["runAsNonRoot"] = False
    pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0][
        "matchExpressions"][0]["values"] = ["eu-west-1"]  # fmt: skip
    pod["containers"][0]["env"].append({"name": "PLATFORM_VAULT_SECRET_ID", "value": "abc"})
    del pod["containers"][0]["resources"]["limits"]
    problems = " | ".join(manifest_problems(service))
    for expected in ("run as root", "UAE region", "no resource limits", "as a literal"):
        assert expected in problems, problems
