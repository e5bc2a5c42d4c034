"""Run the dbt project (dbt/) on the configured warehouse target: one use case's models at a time
(its spec's `transform.select`, with the seeds and models they read).

dbt runs in this process (`dbtRunner`), on a manifest parsed once per process: a daily build passes its
logical date as a `--vars` value, and dbt re-parses the whole project whenever its vars differ from the
last parse (1.5 s of the 5.5 s a day took in a `dbt` process of its own, `bench/ingest_cost.py`). The
project is parsed with fixed vars instead (its partial-parse file then serves every process), and each
build renders its own date at compile time, which is where the models read it.
"""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import json
import os
from collections.abc import Iterator
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
    if not completed.success or failed:
        detail = "\n".join(f"  {node}: {status}" for node, status in sorted(failed.items()))
        raise TransformFailed(
            f"dbt build of {usecase.name} failed for {day or 'all dates'} on target {settings.warehouse_target}:\n"
            f"{detail or '  (no node results: dbt did not start; see its output below)'}\n"
            f"--- dbt output (last lines) ---\n{completed.output}"
        )
    return TransformResult(logical_date=day.isoformat() if day else None, nodes=nodes, seconds=seconds)


# The vars the project is parsed with: a date, so that what a model reads only when `ds` is set is in the
# manifest; the dates themselves are rendered when each build compiles.
PARSE_VARS = {"ds": "1970-01-01"}


@dataclass(frozen=True)
class DbtRun:
    success: bool
    output: str  # dbt's last lines (info and above), for an error message


def run_dbt(settings: Settings, args: list[str]) -> DbtRun:
    """Run dbt command `args` in this process, on the manifest parsed for this process (`_manifest`); the
    connection's secrets and the salt are in the environment for the call only."""
    from dbt.cli.main import dbtRunner

    lines: collections.deque[str] = collections.deque(maxlen=40)

    def keep(event) -> None:
        if event.info.level in ("info", "warn", "error") and event.info.msg:
            lines.append(str(event.info.msg))

    with _environment(dbt_environment(settings)):
        manifest, parse_error = _manifest(settings)
        if manifest is None:
            return DbtRun(False, f"dbt could not parse the project {DBT_PROJECT_DIR}: {parse_error}")
        try:
            result = dbtRunner(manifest=manifest, callbacks=[keep]).invoke([*args, "--quiet"])
        finally:
            _release_connections()
    if result.exception is not None:
        lines.append(f"{type(result.exception).__name__}: {result.exception}")
    return DbtRun(bool(result.success), "\n".join(lines))


_parsed: dict[tuple, object] = {}  # (target, target path, project files' state) -> Manifest


def _manifest(settings: Settings):
    """The project's manifest for this target, parsed at most once per process while dbt/ is unchanged."""
    from dbt.cli.main import dbtRunner

    key = (settings.warehouse_target, str(settings.data_root / "dbt" / "target"), _project_state())
    if key not in _parsed:
        result = dbtRunner().invoke(["parse", "--quiet", "--vars", json.dumps(PARSE_VARS)])
        if not result.success:
            return None, result.exception
        _parsed.clear()
        _parsed[key] = result.result
    return _parsed[key], None


def _release_connections() -> None:
    """Close what dbt keeps open in the process after a command: the stages after it open the warehouse
    themselves (DuckDB refuses a read-only connection beside dbt-duckdb's open read-write one)."""
    from dbt.adapters.factory import reset_adapters

    reset_adapters()
    with contextlib.suppress(ImportError):
        from dbt.adapters.duckdb.connections import DuckDBConnectionManager

        environment = DuckDBConnectionManager._ENV  # dbt-duckdb's process-wide database handle
        DuckDBConnectionManager.close_all_connections()  # forgets it, without closing it
        if environment is not None:
            environment.close()


def _project_state() -> tuple:
    """What a parse depends on in dbt/: every file's path, size and modification time."""
    return tuple(sorted((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in DBT_PROJECT_DIR.rglob("*")
                        if p.is_file() and "target" not in p.parts and "logs" not in p.parts))  # fmt: skip


@contextlib.contextmanager
def _environment(env: dict[str, str]) -> Iterator[None]:
    """os.environ as `env` for the block (dbt reads its flags, profile and secrets there), then as before."""
    before = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(before)


def _run_results_path(settings: Settings) -> Path:
    return settings.data_root / "dbt" / "target" / "run_results.json"


def _node_statuses(settings: Settings) -> dict[str, str]:
    path = _run_results_path(settings)
    if not path.exists():
        return {}
    results = json.loads(path.read_text())["results"]
    return {result["unique_id"]: result["status"] for result in results}
