"""Drive a local Airflow: migrate its metadata DB, run the DAGs for a window of days through
the scheduler (a real backfill), and serve the UI (`make up`)."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx

from pipelines.errors import PlatformError
from pipelines.orchestration.airflow_env import airflow_environment
from pipelines.processes import port_open, stop_groups
from pipelines.settings import Settings

POOLS = {
    "warehouse": (1, "The embedded DuckDB warehouse takes one writer at a time."),
    "feature_store": (1, "Feast materialization into the SQLite online store, one at a time."),
    "gpu": (1, "Training tasks: one at a time per accelerator (or, without one, per CPU budget)."),
}
FINISHED = {"success", "failed"}
ADMIN_USER = "admin"
# A second identity with the Approver role, so that make run and make up show the four-eyes approval of a release
# (the spec's deploy.approval) end to end; labelled as a demo wherever it acts. Production approvers are people.
DEMO_APPROVER = "demo-approver"


class AirflowRunFailed(PlatformError):
    """A DAG run launched by the platform did not succeed."""


def admin_password(settings: Settings) -> str:
    """The local admin's UI password: generated once, kept 0600 beside the metadata DB."""
    return local_password(settings, ADMIN_USER)


def local_password(settings: Settings, user: str) -> str:
    """A local user's password (the admin, the demo approver): generated once, kept 0600 beside the metadata DB."""
    path = settings.airflow_dir / f"{user}_password"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(18))
    return path.read_text().strip()


def python(settings: Settings, code: str) -> subprocess.CompletedProcess[str]:
    """Run Python code in a process with the platform's Airflow environment."""
    completed = subprocess.run(
        [sys.executable, "-c", code], env=airflow_environment(settings), capture_output=True, text=True, check=False
    )
    if completed.returncode != 0:
        raise AirflowRunFailed(f"Airflow setup step failed:\n{completed.stderr[-3000:]}")
    return completed


def airflow(settings: Settings, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run an `airflow` CLI command with the platform's Airflow environment."""
    executable = Path(sys.executable).with_name("airflow")
    completed = subprocess.run(
        [str(executable), *args], env=airflow_environment(settings), capture_output=True, text=True, check=False
    )
    if check and completed.returncode != 0:
        raise AirflowRunFailed(
            f"`airflow {' '.join(args)}` failed:\n{completed.stdout[-3000:]}{completed.stderr[-3000:]}"
        )
    return completed


def prepare(settings: Settings, users: dict[str, tuple[str, str]] | None = None) -> None:
    """Migrate the metadata DB, sync roles and users, serialize the DAGs, create the pools (idempotent).

    `users` ({username: (roles, password)}) are created if missing, beside the local admin and the demo approver.
    """
    settings.airflow_dir.mkdir(parents=True, exist_ok=True)
    airflow(settings, "db", "migrate")
    accounts = {ADMIN_USER: ("Admin", admin_password(settings)),
                DEMO_APPROVER: ("Approver", local_password(settings, DEMO_APPROVER)), **(users or {})}  # fmt: skip
    python(settings, f"from pipelines.orchestration.airflow_adapter import sync_access; sync_access({accounts!r})")
    airflow(settings, "dags", "reserialize")
    for name, (slots, description) in POOLS.items():
        airflow(settings, "pools", "set", name, str(slots), description)


@contextlib.contextmanager
def services(settings: Settings, *names: str, timeout_s: float = 180) -> Iterator[dict[str, subprocess.Popen]]:
    """Run Airflow components (`api-server`, `scheduler`, ...) until the block exits.

    Airflow 3 tasks report to the API server's execution API, so it runs whenever tasks do.
    """
    port = settings.airflow_api_port
    if port_open(port):
        raise AirflowRunFailed(
            f"127.0.0.1:{port} is already in use (is `make up` running?); stop it, or set PLATFORM_AIRFLOW_API_PORT"
        )
    env = airflow_environment(settings)
    executable = str(Path(sys.executable).with_name("airflow"))
    processes: dict[str, subprocess.Popen] = {}

    def start(name: str) -> None:
        with (settings.airflow_dir / f"{name}.log").open("a") as log:
            processes[name] = subprocess.Popen([executable, name], env=env, stdout=log, stderr=subprocess.STDOUT,
                                               start_new_session=True)  # fmt: skip

    try:
        # The API server first: a task that starts before it can report nothing and fails.
        if "api-server" in names:
            start("api-server")
            deadline = time.monotonic() + timeout_s
            while not port_open(port):
                if processes["api-server"].poll() is not None or time.monotonic() > deadline:
                    raise AirflowRunFailed(
                        f"the Airflow API server did not start; see {settings.airflow_dir}/api-server.log"
                    )
                time.sleep(1)
            # The execution API builds itself on its first request (2.6 s here): made now, not by the first task.
            httpx.get(f"http://127.0.0.1:{port}/execution/health", timeout=timeout_s)
        for name in names:
            if name != "api-server":
                start(name)
        yield processes
    finally:
        stop_groups(list(processes.values()))


class Scheduling:
    """A running API server and scheduler (`scheduling()`), through which backfills are run one after
    another without restarting them: a day's backfill then costs its tasks, not Airflow's start-up."""

    def __init__(self, settings: Settings, processes: dict[str, subprocess.Popen], api: httpx.Client):
        self.settings, self.processes, self.api = settings, processes, api

    def backfill(self, dag_id: str, first: dt.date, last: dt.date, tz: ZoneInfo, timeout_s: float = 1800) -> list[dict]:
        """Run `dag_id` for every day in [first, last] (local days of `tz`, its timetable's zone) through the
        scheduler; returns the runs.

        A backfill left open by an interrupted earlier run is cancelled first (no other backfill can
        run here: `services` refuses to start beside `make up`). Raises AirflowRunFailed naming the
        failed runs and where their logs are.
        """
        api = self.api
        _call(api.patch, f"/api/v2/dags/{dag_id}", json={"is_paused": False})
        expected = (last - first).days + 1
        deadline = time.monotonic() + timeout_s
        for stale in _call(api.get, "/api/v2/backfills", params={"dag_id": dag_id})["backfills"]:
            if stale["completed_at"] is None:
                _call(api.put, f"/api/v2/backfills/{stale['id']}/cancel")
        window = {"from_date": dt.datetime.combine(first, dt.time(), tz).isoformat(),
                  "to_date": dt.datetime.combine(last, dt.time(), tz).isoformat()}  # fmt: skip
        created = _call(api.post, "/api/v2/backfills", json={
            "dag_id": dag_id, **window, "max_active_runs": 2, "reprocess_behavior": "completed"})  # fmt: skip
        try:
            while True:
                listed = _call(api.get, f"/api/v2/dags/{dag_id}/dagRuns", params={"limit": 1000})["dag_runs"]
                runs = [r for r in listed if r["logical_date"] and first <= _local_date(r, tz) <= last]
                # A failed day stops the window: later days wait on it (depends_on_past).
                if any(r["state"] == "failed" for r in runs):
                    break
                if len(runs) >= expected and all(r["state"] in FINISHED for r in runs):
                    break
                self._wait(deadline, f"{dag_id} runs did not finish within {timeout_s:.0f} s")
        finally:  # close the backfill now, so that the next one can start (409: it closed itself)
            closed = api.put(f"/api/v2/backfills/{created['id']}/cancel")
            if closed.status_code >= 400 and closed.status_code != 409:
                raise AirflowRunFailed(f"cannot close backfill {created['id']}: {closed.status_code} {closed.text}")
        failed = [r for r in runs if r["state"] != "success"]
        if failed:
            logs = self.settings.airflow_dir / "logs" / f"dag_id={dag_id}"
            raise AirflowRunFailed(
                f"{len(failed)} of {len(runs)} {dag_id} runs failed: "
                + ", ".join(sorted(r["dag_run_id"] for r in failed))
                + f"; task logs under {logs}"
            )
        return sorted(runs, key=lambda r: _local_date(r, tz))

    def _wait(self, deadline: float, too_late: str) -> None:
        """A second's wait while polling, unless Airflow exited or the deadline passed."""
        exited = {n: p.returncode for n, p in self.processes.items() if p.poll() is not None}
        if exited:
            raise AirflowRunFailed(f"Airflow exited {exited}; see {self.settings.airflow_dir}/*.log")
        if time.monotonic() > deadline:
            raise AirflowRunFailed(too_late)
        time.sleep(1)

    def trigger(self, dag_id: str, conf: dict, timeout_s: float = 1800) -> dict:
        """Unpause `dag_id`, trigger one run with `conf` through the REST API and wait for it; the run.
        Raises AirflowRunFailed if it does not succeed, naming where its task logs are."""
        _call(self.api.patch, f"/api/v2/dags/{dag_id}", json={"is_paused": False})
        run = _call(self.api.post, f"/api/v2/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf})
        deadline = time.monotonic() + timeout_s
        while run["state"] not in FINISHED:
            self._wait(deadline, f"{dag_id} {run['dag_run_id']} did not finish within {timeout_s:.0f} s")
            run = _call(self.api.get, f"/api/v2/dags/{dag_id}/dagRuns/{run['dag_run_id']}")
        if run["state"] != "success":
            logs = self.settings.airflow_dir / "logs" / f"dag_id={dag_id}"
            raise AirflowRunFailed(f"{dag_id} {run['dag_run_id']} ended {run['state']}; task logs under {logs}")
        return run


@contextlib.contextmanager
def scheduling(settings: Settings, triggerer: bool = False) -> Iterator[Scheduling]:
    """The API server and scheduler (and with `triggerer`, the triggerer, which runs the asset watchers) until
    the block exits, with a client logged in as the local admin.

    Only DAGs that a backfill unpaused are scheduled: runs of paused DAGs made by `test_run` meanwhile
    are left alone by the scheduler."""
    names = ("api-server", "scheduler", *(("triggerer",) if triggerer else ()))
    with services(settings, *names) as processes, _api(settings) as api:
        yield Scheduling(settings, processes, api)


@contextlib.contextmanager
def celery_workers(settings: Settings, count: int, timeout_s: float = 120) -> Iterator[list[Path]]:
    """`count` Celery workers (`airflow celery worker`, one task at a time each) until the block exits;
    yields their log files. Each has its own node name; none serves logs over HTTP (they share this
    machine's log folder, which the API server reads)."""
    if settings.airflow_executor != "CeleryExecutor":
        raise AirflowRunFailed("Celery workers need PLATFORM_AIRFLOW_EXECUTOR=CeleryExecutor")
    env = airflow_environment(settings)
    executable = str(Path(sys.executable).with_name("airflow"))
    workers, logs = [], []
    try:
        for n in range(1, count + 1):
            log = settings.airflow_dir / f"celery-worker-{n}.log"
            with log.open("a") as out:
                workers.append(subprocess.Popen(
                    [executable, "celery", "worker", "--celery-hostname", f"worker{n}@%h", "--concurrency", "1",
                     "--skip-serve-logs"], env=env, stdout=out, stderr=subprocess.STDOUT,
                    start_new_session=True))  # fmt: skip
            logs.append(log)
        deadline = time.monotonic() + timeout_s
        while not all("ready." in log.read_text() for log in logs):
            exited = [str(log) for worker, log in zip(workers, logs, strict=True) if worker.poll() is not None]
            if exited or time.monotonic() > deadline:
                raise AirflowRunFailed(f"Celery workers did not start; see {', '.join(exited or map(str, logs))}")
            time.sleep(1)
        yield logs
    finally:
        stop_groups(workers)


def backfill(settings: Settings, dag_id: str, first: dt.date, last: dt.date, tz: ZoneInfo,
             timeout_s: float = 1800) -> list[dict]:  # fmt: skip
    """Run `dag_id` for every day in [first, last] through the scheduler, started for this alone."""
    with scheduling(settings) as airflow_scheduler:
        return airflow_scheduler.backfill(dag_id, first, last, tz, timeout_s)


def test_run(settings: Settings, dag_id: str, conf: dict) -> None:
    """Run `dag_id` once in this machine's Airflow (`airflow dags test`: every task, in order, recorded in
    the metadata DB and the UI), without unpausing it: unpausing a DAG with a time-based schedule makes
    the scheduler start the most recent missed run too. Raises AirflowRunFailed if a task fails."""
    done = airflow(settings, "dags", "test", dag_id, "-c", json.dumps(conf), check=False)
    listed = airflow(settings, "dags", "list-runs", dag_id, "-o", "json").stdout
    runs = json.loads(next((line for line in reversed(listed.splitlines()) if line.startswith("[")), "[]"))
    newest = max(runs, key=lambda r: r.get("start_date") or "", default=None)
    if done.returncode != 0 or newest is None or newest["state"] != "success":
        state = newest["state"] if newest else "no run"
        raise AirflowRunFailed(
            f"{dag_id} {newest['run_id'] if newest else ''} ended {state}: {done.stderr[-1500:]}"
            f"\ntask output: {done.stdout[-1500:]}"
        )


@contextlib.contextmanager
def _api(settings: Settings, user: str = ADMIN_USER) -> Iterator[httpx.Client]:
    """An HTTP client of the local API server, logged in as the local admin (or another local user)."""
    base = f"http://127.0.0.1:{settings.airflow_api_port}"
    login = {"username": user, "password": local_password(settings, user)}
    token = httpx.post(f"{base}/auth/token", json=login, timeout=60)
    if token.status_code not in (200, 201):
        raise AirflowRunFailed(f"cannot log in to the Airflow API as {user}: {token.status_code} {token.text}")
    headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
    with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
        yield client


def _call(method, path: str, **kwargs) -> dict:
    response = method(path, **kwargs)
    if response.status_code >= 400:
        raise AirflowRunFailed(f"Airflow API {path} answered {response.status_code}: {response.text[:2000]}")
    return response.json()


def _local_date(run: dict, tz: ZoneInfo) -> dt.date:
    return dt.datetime.fromisoformat(run["logical_date"]).astimezone(tz).date()


@contextlib.contextmanager
def demo_approvals(settings: Settings, dag_id: str, echo=print) -> Iterator[list[dict]]:
    """While the block runs, the demo approver answers every approval request of `dag_id` with Approve through the
    REST API, as a person would in the UI (starting an API server if none runs); yields what it approved."""
    import threading

    approved: list[dict] = []
    stop = threading.Event()

    def answer(api: httpx.Client) -> None:
        while not stop.wait(1):
            waiting = api.get(f"/api/v2/dags/{dag_id}/dagRuns/~/hitlDetails", params={"response_received": "false"})
            for detail in waiting.json().get("hitl_details", []) if waiting.status_code == 200 else []:
                ti = detail["task_instance"]
                path = (f"/api/v2/dags/{dag_id}/dagRuns/{ti['dag_run_id']}/taskInstances/{ti['task_id']}/"
                        f"{ti['map_index']}/hitlDetails")  # fmt: skip
                if api.patch(path, json={"chosen_options": ["Approve"]}).status_code == 200:
                    approved.append(detail)
                    echo(f"  [demo] {DEMO_APPROVER}, the second identity make run creates with the Approver role, "
                         f"approved: {detail['subject']} (in production a person answers in the Airflow UI, "
                         "Required Actions)")  # fmt: skip

    with contextlib.ExitStack() as stack:
        if not port_open(settings.airflow_api_port):
            stack.enter_context(services(settings, "api-server"))
        api = stack.enter_context(_api(settings, DEMO_APPROVER))
        thread = threading.Thread(target=answer, args=(api,), daemon=True, name="demo-approver")
        thread.start()
        try:
            yield approved
        finally:
            stop.set()
            thread.join(timeout=30)
