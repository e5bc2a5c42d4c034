"""Run the dbt project (dbt/) on the configured warehouse target: one use case's models at a time
(its spec's `transform.select`, with the seeds and models they read)."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from pipelines.errors import TransformFailed
from pipelines.features.pii import SALT_ENV
from pipelines.security.secrets import pii_salt, postgres_connection
from pipelines.settings import REPO_ROOT, Settings
from pipelines.usecases.spec import UseCase

DBT_PROJECT_DIR = REPO_ROOT / "dbt"
MARTS_SCHEMA = "marts"


@dataclass(frozen=True)
class TransformResult:
    logical_date: str | None
    nodes: dict[str, str]  # unique_id -> status
    seconds: float

    @property
    def passed(self) -> int:
        return sum(status in ("success", "pass") for status in self.nodes.values())


def dbt_environment(settings: Settings) -> dict[str, str]:
    """Environment for a dbt process: target, connection, salt (from Vault; never on the command line)."""
    salt = pii_salt(settings)
    env = {
        **os.environ,
        "DBT_TARGET": settings.warehouse_target,
        "DBT_PROFILES_DIR": str(DBT_PROJECT_DIR),
        "DBT_PROJECT_DIR": str(DBT_PROJECT_DIR),
        "DBT_TARGET_PATH": str(settings.data_root / "dbt" / "target"),
        "DBT_LOG_PATH": str(settings.data_root / "dbt" / "logs"),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "DBT_USE_COLORS": "false",
        "PLATFORM_WAREHOUSE_PATH": str(settings.warehouse_path),
        SALT_ENV: salt,
    }
    if settings.warehouse_target == "postgres":
        pg = postgres_connection(settings)
        env.update(
            pg.environment(),
            DBT_ENV_SECRET_PG_PASSWORD=pg.password,
            PGOPTIONS=f"-c platform.pii_salt={salt}",
        )
    return env


def dbt_scope(usecase: UseCase, day: dt.date | None = None) -> list[str]:
    """The arguments that point a dbt command at one use case: its models and what they read (seeds,
    upstream models), the logical date (`ds`) and its time zone."""
    variables = {"ds": day.isoformat() if day else None, "timezone": usecase.timezone}
    selection = " ".join(f"+{part}" for part in usecase.transform.select.split())
    return ["--vars", json.dumps(variables), "--select", selection]


def build_features(settings: Settings, usecase: UseCase, day: dt.date | None = None) -> TransformResult:
    """`dbt build` (seeds, models, tests) of the use case's models and what they read, for one logical
    date, or every date when `day` is None (a full refresh of those models only).

    Raises TransformFailed naming every failed model or test; dbt's own output is in the message.
    """
    settings.warehouse_path.parent.mkdir(parents=True, exist_ok=True)
    args = ["build", *dbt_scope(usecase, day)]
    if day is None:
        args.append("--full-refresh")
    _run_results_path(settings).unlink(missing_ok=True)
    started = dt.datetime.now()
    completed = run_dbt(settings, args)
    seconds = (dt.datetime.now() - started).total_seconds()
    nodes = _node_statuses(settings)
    failed = {node: status for node, status in nodes.items() if status in ("error", "fail")}
    if completed.returncode != 0 or failed:
        detail = "\n".join(f"  {node}: {status}" for node, status in sorted(failed.items()))
        raise TransformFailed(
            f"dbt build of {usecase.name} failed for {day or 'all dates'} on target {settings.warehouse_target}:\n"
            f"{detail or '  (no node results: dbt did not start; see its output below)'}\n"
            f"--- dbt output (last lines) ---\n{_tail(completed.stdout)}"
        )
    return TransformResult(logical_date=day.isoformat() if day else None, nodes=nodes, seconds=seconds)


def run_dbt(settings: Settings, args: list[str]) -> subprocess.CompletedProcess[str]:
    """Run a dbt command in its own process (the salt stays in that process's environment)."""
    dbt = Path(sys.executable).with_name("dbt")
    return subprocess.run(
        [str(dbt), *args],
        cwd=DBT_PROJECT_DIR,
        env=dbt_environment(settings),
        capture_output=True,
        text=True,
        check=False,
    )


def _run_results_path(settings: Settings) -> Path:
    return settings.data_root / "dbt" / "target" / "run_results.json"


def _node_statuses(settings: Settings) -> dict[str, str]:
    path = _run_results_path(settings)
    if not path.exists():
        return {}
    results = json.loads(path.read_text())["results"]
    return {result["unique_id"]: result["status"] for result in results}


def _tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])
