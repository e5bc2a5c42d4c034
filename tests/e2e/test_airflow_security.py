"""Airflow as the platform runs it (API server + scheduler, FAB logins, VaultBackend, audit listener):
roles enforced through the REST API, connections and variables read from Vault and masked in
task logs, and every DAG-run and task state change in the audit ledger."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

import httpx
import pytest

from pipelines.orchestration import local_airflow
from pipelines.security.audit import audit_ledger
from pipelines.security.secrets import PII_SALT_VARIABLE, put_connection, variable
from pipelines.settings import REPO_ROOT, Settings
from tests.conftest import make_settings
from tests.e2e.conftest import SCREENSHOTS, chromium_page

pytestmark = pytest.mark.e2e
BASE = "http://127.0.0.1:8080"  # PLATFORM_AIRFLOW_API_PORT, as make_settings leaves it
DAG_ID = "vault_probe"
USERS = {"auditor": "Auditor", "operator": "Operator", "engineer": "MLEngineer"}


@dataclass
class RunningAirflow:
    settings: Settings
    passwords: dict[str, str]
    secrets: dict[str, str]

    def headers(self, user: str) -> dict[str, str]:
        password = self.passwords[user]
        response = httpx.post(f"{BASE}/auth/token", json={"username": user, "password": password}, timeout=30)
        assert response.status_code in (200, 201), response.text
        return {"Authorization": f"Bearer {response.json()['access_token']}"}


@pytest.fixture(scope="module")
def airflow_up(tmp_path_factory, openbao):
    settings = make_settings(tmp_path_factory.mktemp("airflow") / "var",
                             dags_folder=REPO_ROOT / "tests" / "e2e" / "dags")  # fmt: skip
    probe = {"password": secrets.token_hex(12), "token": secrets.token_hex(12)}
    # Only Vault knows these: Airflow's metadata DB has no connections or variables at all.
    put_connection(openbao.root, "probe_db", {"conn_type": "postgres", "host": "probe-host.example",
                                              "login": "probe_user", "password": probe["password"]})  # fmt: skip
    openbao.root.write_secret("airflow/variables/probe_api_token", {"value": probe["token"]})
    probe["salt"] = variable(openbao.root, PII_SALT_VARIABLE)
    passwords = {user: secrets.token_urlsafe(12) for user in USERS}
    local_airflow.prepare(settings, {user: (role, passwords[user]) for user, role in USERS.items()})
    local_airflow.airflow(settings, "dags", "unpause", DAG_ID)
    with local_airflow.services(settings, "api-server", "scheduler"):
        yield RunningAirflow(settings, passwords, probe)


def _trigger(airflow_up, conf: dict | None = None) -> dict:
    """The operator triggers the probe DAG through the REST API; the scheduler runs it to the end."""
    url = f"{BASE}/api/v2/dags/{DAG_ID}/dagRuns"
    headers = airflow_up.headers("operator")
    created = httpx.post(url, json={"logical_date": None, "conf": conf or {}}, headers=headers, timeout=30)
    assert created.status_code == 200, created.text
    run_id = created.json()["dag_run_id"]
    deadline = time.monotonic() + 240
    while (run := httpx.get(f"{url}/{run_id}", headers=headers, timeout=30).json())["state"] not in (
        "success", "failed"):  # fmt: skip
        assert time.monotonic() < deadline, f"{DAG_ID} did not finish: {run}"
        time.sleep(2)
    return run


@pytest.fixture(scope="module")
def probe_run(airflow_up) -> dict:
    return _trigger(airflow_up)


def test_without_a_login_nothing_is_served(airflow_up):
    assert httpx.get(f"{BASE}/api/v2/dags", timeout=30).status_code == 401
    wrong = httpx.post(f"{BASE}/auth/token", json={"username": "operator", "password": "wrong"}, timeout=30)
    assert wrong.status_code == 401


def test_an_auditor_reads_everything_and_changes_nothing(airflow_up):
    headers = airflow_up.headers("auditor")
    assert httpx.get(f"{BASE}/api/v2/dags/{DAG_ID}", headers=headers, timeout=30).status_code == 200
    assert httpx.get(f"{BASE}/api/v2/dagSources/{DAG_ID}", headers=headers, timeout=30).status_code == 200
    assert httpx.get(f"{BASE}/api/v2/eventLogs", headers=headers, timeout=30).status_code == 200
    trigger = httpx.post(f"{BASE}/api/v2/dags/{DAG_ID}/dagRuns", json={"logical_date": None},
                         headers=headers, timeout=30)  # fmt: skip
    assert trigger.status_code == 403, trigger.text
    pause = httpx.patch(f"{BASE}/api/v2/dags/{DAG_ID}", json={"is_paused": True}, headers=headers, timeout=30)
    assert pause.status_code == 403, pause.text


def test_an_operator_runs_and_pauses_but_cannot_read_code(airflow_up, probe_run):
    headers = airflow_up.headers("operator")
    assert probe_run["state"] == "success"
    assert httpx.get(f"{BASE}/api/v2/dagSources/{DAG_ID}", headers=headers, timeout=30).status_code == 403
    for paused in (True, False):
        response = httpx.patch(f"{BASE}/api/v2/dags/{DAG_ID}", json={"is_paused": paused}, headers=headers,
                               timeout=30)  # fmt: skip
        assert response.status_code == 200 and response.json()["is_paused"] is paused


def test_an_ml_engineer_reads_code_and_triggers(airflow_up):
    headers = airflow_up.headers("engineer")
    assert httpx.get(f"{BASE}/api/v2/dagSources/{DAG_ID}", headers=headers, timeout=30).status_code == 200
    variables = httpx.get(f"{BASE}/api/v2/variables", headers=headers, timeout=30)
    assert variables.status_code == 403  # secrets are Vault's business, not the UI's


def test_task_reads_secrets_from_vault_and_its_log_masks_them(airflow_up, probe_run):
    logs = list((airflow_up.settings.airflow_dir / "logs").rglob("*.log"))
    task_logs = [p for p in logs if f"dag_id={DAG_ID}" in str(p) and "task_id=print_secrets" in str(p)]
    assert task_logs, f"no task log among {logs}"
    text = "\n".join(p.read_text() for p in task_logs)
    assert "probe host=probe-host.example login=probe_user" in text  # resolved from Vault
    for name, value in airflow_up.secrets.items():
        assert value not in text, f"the {name} from Vault appears in clear in the task log"
    assert "password=***" in text and "token=***" in text and "salt=***" in text


def test_every_run_and_task_state_change_is_in_the_audit_ledger(airflow_up, probe_run):
    ledger = audit_ledger(airflow_up.settings)
    ledger.verify()
    events = [(r.action, r.subject) for r in ledger.records() if r.subject.startswith(f"{DAG_ID}/")]
    run = f"{DAG_ID}/{probe_run['dag_run_id']}"
    assert (("dag_run.running", run) in events) and (("dag_run.success", run) in events), events
    task = f"{run}/print_secrets"
    assert events.index(("task.running", task)) < events.index(("task.success", task))


def test_a_failed_run_opens_an_incident_that_the_next_success_clears(airflow_up, probe_run):
    """The audit listener, in the scheduler: a failed run of the probe opens `dag:vault_probe` (the probe belongs
    to no use case: the platform's); the next successful run marks it cleared, for a person to resolve."""
    from pipelines.alerting.incidents import Incidents

    failed = _trigger(airflow_up, {"fail": True})
    assert failed["state"] == "failed"
    [incident] = [i for i in Incidents(airflow_up.settings).list() if i.cause == f"dag:{DAG_ID}"]
    assert (incident.kind, incident.usecase, incident.severity, incident.cleared_at) == (
        "DagRunFailed", "platform", "ticket", None)  # fmt: skip
    assert failed["dag_run_id"] in incident.summary and incident.runbook_url == "docs/runbooks/dag_run_failed.md"
    assert _trigger(airflow_up)["state"] == "success"
    deadline = time.monotonic() + 60  # the listener writes right after the run's state
    while (after := Incidents(airflow_up.settings).get(incident.id)).cleared_at is None:
        assert time.monotonic() < deadline, "the successful run did not clear the incident"
        time.sleep(1)
    assert after.state == "open", "a person still resolves it"


def test_a_run_that_opened_its_own_incident_opens_no_second_one(airflow_up, probe_run):
    """One cause, one incident: a release rolled back by the canary opens CanaryRolledBack for its run and fails
    it; the listener then opens no DagRunFailed beside it."""
    from pipelines.alerting.incidents import Incidents

    incidents = Incidents(airflow_up.settings)
    for earlier in [i for i in incidents.list() if i.cause == f"dag:{DAG_ID}"]:  # the failed-run test's
        incidents.resolve(earlier.id, "test", "closed before this test")
    failed = _trigger(airflow_up, {"fail": True, "rollback": True})
    assert failed["state"] == "failed"
    run, deadline = f"{DAG_ID}/{failed['dag_run_id']}", time.monotonic() + 60
    while not (said := [r for r in audit_ledger(airflow_up.settings).records()
                        if r.subject == run and r.action == "dag_run.failure_explained"]):  # fmt: skip
        assert time.monotonic() < deadline, "the listener did not record why the run failed"
        time.sleep(1)
    unresolved = {i.cause: i for i in Incidents(airflow_up.settings).list()}
    assert f"dag:{DAG_ID}" not in unresolved, unresolved[f"dag:{DAG_ID}"].summary
    rolled = unresolved["rollback:probe/v1"]
    assert said[0].details == {"incidents": [rolled.id], "causes": ["rollback:probe/v1"]}


def test_the_models_page_needs_a_login_and_shows_the_registry(airflow_up, trained_models):
    """The Models page (plugins/models_page.py) on the registry of a trained champion and challenger."""
    import shutil

    from pipelines.alerting.incidents import platform_event

    store, versions = trained_models
    shutil.copytree(store, airflow_up.settings.data_root / "artifacts", dirs_exist_ok=True)
    rolled = platform_event(airflow_up.settings, "CanaryRolledBack", "rollback:flight_delay/v9", "flight_delay",
                            "v9 rolled back to the champion: error rate 0.4 > 0.01")  # fmt: skip
    page = f"{BASE}/platform-models/"
    assert httpx.get(page, timeout=30).status_code == 401
    assert httpx.get(f"{BASE}/platform-models/lineage/flight_delay/1", timeout=30).status_code == 401
    headers = airflow_up.headers("auditor")
    shown = httpx.get(page, headers=headers, timeout=60)
    assert shown.status_code == 200, shown.text
    champion, challenger = versions["champion"], versions["challenger"]
    assert f'v{champion} <span class="alias">champion</span>' in shown.text
    assert f'v{challenger} <span class="alias">challenger</span>' in shown.text
    assert "No deployment plan" in shown.text and "FeatureService flight_delay" in shown.text
    assert f"<td>#{rolled.id}</td><td>open<br></td><td class=ticket>ticket</td>" in shown.text
    assert "v9 rolled back to the champion: error rate 0.4 &gt; 0.01" in shown.text
    assert '<a href="runbooks/canary_rollback.md">' in shown.text
    lineage = httpx.get(f"{BASE}/platform-models/lineage/flight_delay/{champion}", headers=headers, timeout=60)
    assert lineage.json()["lineage"]["feature_service"]["name"] == "flight_delay_v3"
    assert httpx.get(f"{BASE}/platform-models/lineage/flight_delay/99", headers=headers, timeout=60).status_code == 404
    escape = httpx.get(f"{BASE}/platform-models/reports/..%2F..%2Fvault%2Finit.json", headers=headers, timeout=30)
    assert escape.status_code == 404
    assert httpx.get(f"{BASE}/platform-models/runbooks/canary_rollback.md", timeout=30).status_code == 401
    runbook = httpx.get(f"{BASE}/platform-models/runbooks/canary_rollback.md", headers=headers, timeout=30)
    assert runbook.status_code == 200 and runbook.text.startswith("# Runbook: CanaryRolledBack")
    sneaky = httpx.get(f"{BASE}/platform-models/runbooks/..%2F..%2FREADME.md", headers=headers, timeout=30)
    assert sneaky.status_code == 404
    plugins = httpx.get(f"{BASE}/api/v2/plugins", headers=headers, timeout=30)  # the UI's nav reads it
    assert plugins.status_code == 200, plugins.text
    [listed] = [p for p in plugins.json()["plugins"] if p["name"] == "platform_models_page"]
    assert listed["external_views"][0]["name"] == "Models"  # the nav entry


def test_the_models_page_renders_in_a_real_browser(airflow_up, trained_models):
    """Headless Chromium logs in through Airflow's login form, opens Models from the navigation and
    gets the page inside the Airflow UI; the screenshot is kept (var/screenshots/models_page.png)."""
    import shutil

    store, versions = trained_models
    shutil.copytree(store, airflow_up.settings.data_root / "artifacts", dirs_exist_ok=True)
    with chromium_page() as page:
        page.goto(f"{BASE}/platform-models/")
        assert "champion" not in page.content()  # no login, no registry
        page.goto(f"{BASE}/")
        page.fill("input[name=username]", "auditor")
        page.fill("input[name=password]", airflow_up.passwords["auditor"])
        page.keyboard.press("Enter")
        nav = page.get_by_role("button", name="Models").or_(page.get_by_role("link", name="Models"))
        nav.first.click(timeout=60_000)  # the plugin's entry in Airflow's navigation
        page.wait_for_url("**/plugin/models/**")
        frame = page.frame_locator("iframe").first
        frame.get_by_text("champion").first.wait_for(timeout=60_000)
        page.screenshot(path=str(SCREENSHOTS / "models_page.png"), full_page=True)
        text = frame.locator("body").inner_text()
        assert f"v{versions['champion']}" in text and f"v{versions['challenger']}" in text
        assert "FeatureService flight_delay" in text
