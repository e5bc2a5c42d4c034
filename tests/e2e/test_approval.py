"""Four-eyes approval of a release through Airflow's real API server and scheduler: the deploy DAG (spec's
`deploy.approval: required`) waits on its human-in-the-loop step before any traffic moves. The user who started
the release may not answer it (refused, naming separation of duties), neither may a user without the Approver
role; another Approver's answer releases the candidate. A release nobody answers in time is rejected. Every
request and answer is in the ledger, naming the person."""

from __future__ import annotations

import secrets
import time
from urllib.parse import urlparse

import httpx
import pytest

from pipelines.governance.approvals import pending
from pipelines.orchestration import local_airflow
from pipelines.security.audit import audit_ledger
from serving.auth import create_key
from serving.client import register_service
from serving.local import wait_ready
from tests.conftest import make_settings
from tests.e2e.conftest import SCREENSHOTS, chromium_page, serve

pytestmark = pytest.mark.e2e
MODEL, DAG_ID = "flight_delay", "flight_delay_deploy"
BASE = "http://127.0.0.1:8080"
USERS = {"alice": "MLEngineer,Approver", "bob": "Approver", "carol": "Operator"}
TIMEOUT = 60  # the spec's deploy.approval_timeout in these tests: seconds


@pytest.fixture(scope="module")
def airflow(champion, openbao, tmp_path_factory):
    store_settings, _ = champion
    root = tmp_path_factory.mktemp("approval")
    settings = make_settings(root / "var", artifact_store_uri=store_settings.artifact_store_uri,
                             usecase_overrides={MODEL: {"deploy.approval": "required",
                                                        "deploy.approval_timeout": f"PT{TIMEOUT}S"}})  # fmt: skip
    settings.raw_dir.parent.mkdir(parents=True, exist_ok=True)
    settings.raw_dir.symlink_to(store_settings.raw_dir)  # the landed days the release's smoke test asks about
    passwords = {user: secrets.token_urlsafe(12) for user in USERS}
    local_airflow.prepare(settings, {user: (roles, passwords[user]) for user, roles in USERS.items()})
    local_airflow.airflow(settings, "dags", "unpause", DAG_ID)
    key = create_key(openbao.root, "approval-deployer", ["admin", "predict"])
    with serve(store_settings, openbao, root) as base:
        wait_ready(base)
        register_service(openbao.root, settings, urlparse(base).port, key)
        with local_airflow.services(settings, "api-server", "scheduler"):
            yield settings, base, {u: _login(u, p) for u, p in passwords.items()}, passwords


def _login(user: str, password: str) -> dict:
    deadline, last = time.monotonic() + 120, "no answer yet"
    while True:
        try:  # the API server may still be starting: retried until the deadline, the last answer named
            token = httpx.post(f"{BASE}/auth/token", json={"username": user, "password": password}, timeout=30)
            if token.status_code in (200, 201):
                return {"Authorization": f"Bearer {token.json()['access_token']}"}
            last = f"HTTP {token.status_code}: {token.text[:200]}"
        except httpx.HTTPError as exc:
            last = f"{type(exc).__name__}: {exc}"
        assert time.monotonic() < deadline, f"cannot log in as {user} ({last})"
        time.sleep(2)


def _release(headers: dict, version: int) -> str:
    """Alice starts a release of `version` as champion through the REST API; the run id."""
    created = httpx.post(f"{BASE}/api/v2/dags/{DAG_ID}/dagRuns", headers=headers, timeout=30,
                         json={"logical_date": None, "conf": {"version": version, "alias": "champion"}})  # fmt: skip
    assert created.status_code == 200, created.text
    return created.json()["dag_run_id"]


def _waiting(headers: dict, run_id: str) -> dict:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        found = httpx.get(f"{BASE}/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/hitlDetails", headers=headers, timeout=30)
        details = found.json().get("hitl_details", []) if found.status_code == 200 else []
        if details:
            return details[0]
        time.sleep(2)
    raise AssertionError(f"{run_id} never asked for an approval")


def _answer(headers: dict, run_id: str, option: str) -> httpx.Response:
    return httpx.patch(f"{BASE}/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/approve/-1/hitlDetails",
                       headers=headers, json={"chosen_options": [option]}, timeout=30)  # fmt: skip


def _finished(headers: dict, run_id: str, timeout_s: float = 300) -> dict:
    deadline = time.monotonic() + timeout_s
    while (run := httpx.get(f"{BASE}/api/v2/dags/{DAG_ID}/dagRuns/{run_id}", headers=headers,
                            timeout=30).json())["state"] not in ("success", "failed"):  # fmt: skip
        assert time.monotonic() < deadline, run
        time.sleep(2)
    return run


def test_an_approver_other_than_whoever_started_it_releases_the_candidate(airflow, trained_models):
    settings, base, users, passwords = airflow
    version = trained_models[1]["challenger"]
    run_id = _release(users["alice"], version)
    asked = _waiting(users["bob"], run_id)
    assert asked["subject"] == f"Release {MODEL} v{version} (xgboost) as champion?"
    assert (
        "Gate: **passed**" in asked["body"]
        and "| roc_auc |" in asked["body"]
        and "champion (same holdout)" in asked["body"]
    )
    assert "and not alice (started its training or its release)" in asked["body"]
    assert [a["id"] for a in asked["assigned_users"]] == ["role:Approver", "not:alice"]
    assert [r["model"] for r in pending(settings)] == [f"{MODEL}/v{version}"]  # platform models approvals
    with chromium_page() as page:  # what Bob sees in the Airflow UI: the run's Required Actions
        page.goto(f"{BASE}/")
        page.fill("input[name=username]", "bob")
        page.fill("input[name=password]", passwords["bob"])
        page.keyboard.press("Enter")
        page.wait_for_load_state("networkidle")
        page.goto(f"{BASE}/dags/{DAG_ID}/runs/{run_id}/tasks/approve/required_actions")
        page.get_by_text(asked["subject"]).first.wait_for(timeout=60_000)
        page.screenshot(path=str(SCREENSHOTS / "approval.png"), full_page=True)
    mine = _answer(users["alice"], run_id, "Approve")  # she holds the Approver role, but started this release
    assert mine.status_code == 403 and "separation of duties" in mine.text
    assert _answer(users["carol"], run_id, "Approve").status_code == 403  # no Approver role
    approved = _answer(users["bob"], run_id, "Approve")
    assert approved.status_code == 200, approved.text
    assert _finished(users["bob"], run_id)["state"] == "success"
    status = httpx.post(f"{base}/status", json={}, timeout=30).json()["usecases"][MODEL]
    assert status["variants"] == [{"name": "champion", "version": version, "weight": 100.0}]
    trail = [
        (r.action, r.actor, r.details) for r in audit_ledger(settings).records() if r.action.startswith("approval.")
    ]
    assert trail[0][0] == "approval.requested" and trail[0][2]["excluded"] == ["alice"]
    assert trail[-1][0] == "approval.approved" and trail[-1][1] == "bob" and trail[-1][2]["by"] == "bob"
    assert pending(settings) == []


def test_a_release_nobody_answers_in_time_is_rejected(airflow, trained_models):
    settings, _, users, _ = airflow
    run_id = _release(users["alice"], trained_models[1]["champion"])
    _waiting(users["bob"], run_id)
    run = _finished(users["bob"], run_id, timeout_s=TIMEOUT + 240)
    assert run["state"] == "failed"
    listed = httpx.get(f"{BASE}/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances", headers=users["bob"], timeout=30)
    states = {t["task_id"]: t["state"] for t in listed.json()["task_instances"]}
    assert states["approve"] == "failed" and states["release"] in ("upstream_failed", "skipped")
    trail = [r for r in audit_ledger(settings).records() if r.action.startswith("approval.")]
    assert trail[-1].action == "approval.timed_out" and trail[-1].details["run"] == f"{DAG_ID}/{run_id}"
