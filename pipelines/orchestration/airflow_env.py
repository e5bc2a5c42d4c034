"""The environment every Airflow process of the platform runs with, derived from the settings."""

from __future__ import annotations

import json
import os

from pipelines.errors import PlatformError
from pipelines.security.secrets import CONNECTIONS_PATH, VARIABLES_PATH
from pipelines.security.vault import KV_MOUNT, vault_environment
from pipelines.settings import REPO_ROOT, Settings, settings_environment

# Telemetry off for every tool that has it: there is no route out, and enterprises expect it.
TELEMETRY_OFF = {
    "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    "FEAST_USAGE": "False",
    "BENTOML_DO_NOT_TRACK": "True",
    "GX_ANALYTICS_ENABLED": "false",
    "SCARF_ANALYTICS": "false",
    "AIRFLOW__USAGE_DATA_COLLECTION__ENABLED": "False",
}


def airflow_environment(settings: Settings) -> dict[str, str]:
    """os.environ plus Airflow's configuration: home, folders, metadata DB, executor."""
    home = settings.airflow_dir
    metadata_url = settings.airflow_metadata_url.get_secret_value() if settings.airflow_metadata_url else None
    env = {
        **os.environ,
        **TELEMETRY_OFF,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(settings.dags_folder),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO_ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": settings.airflow_executor,
        "AIRFLOW__CORE__PARALLELISM": "2",
        "AIRFLOW__CORE__DEFAULT_TIMEZONE": settings.airflow_timezone,
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata_url or f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
        "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": str(settings.airflow_idle_sleep_seconds),
        # The task supervisor waits up to this long in one select() for its task; when a task's sockets close
        # just before its process exits, it notices the exit only after that wait (a skipped task held its
        # slot 5 s with the default: bench/ingest_cost.py). It is also the shortest heartbeat interval.
        "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "1",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(settings.airflow_api_port),
        # Logins and roles (Auditor, Operator, MLEngineer, Approver, Admin) through Flask-AppBuilder.
        "AIRFLOW__CORE__AUTH_MANAGER": "pipelines.orchestration.auth.PlatformAuthManager",  # FAB, and approvals
        # Values of connections and variables whose names contain these words are masked in logs.
        "AIRFLOW__CORE__SENSITIVE_VAR_CONN_NAMES": "salt,token,credential",
        "AIRFLOW__CORE__HIDE_SENSITIVE_VAR_CONN_FIELDS": "True",
    }
    if metadata_url and metadata_url.startswith("postgresql"):
        # Airflow 3's API server also opens the DB asynchronously: psycopg (3) serves both ways.
        env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC"] = "postgresql+psycopg://" + metadata_url.split("://", 1)[1]
    if settings.airflow_executor == "CeleryExecutor":
        if not metadata_url or not metadata_url.startswith("postgresql"):
            raise PlatformError(
                "CeleryExecutor needs Airflow's metadata DB on PostgreSQL (its task results are kept there): "
                "set PLATFORM_AIRFLOW_METADATA_URL=postgresql+psycopg2://USER@HOST/DB"
            )
        env.update({
            "AIRFLOW__CELERY__BROKER_URL": settings.celery_broker_url,
            "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + metadata_url.replace("+psycopg2", "").replace("+psycopg", ""),
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": "1",
        })  # fmt: skip
    # Tasks read the same platform settings, with the same Vault identity, as this process.
    env.update(settings_environment(settings))
    env.update(vault_environment(settings))
    env.update(secrets_backend(settings))
    return env


VAULT_BACKEND = "airflow.providers.hashicorp.secrets.vault.VaultBackend"  # pragma: allowlist secret


def secrets_backend(settings: Settings) -> dict[str, str]:
    """Airflow's VaultBackend on the platform's KV mount: connections and variables come from Vault."""
    if not settings.vault_addr:
        return {}
    kwargs = {
        "url": settings.vault_addr,
        "mount_point": KV_MOUNT,
        "connections_path": CONNECTIONS_PATH,
        "variables_path": VARIABLES_PATH,
        "config_path": None,
        "kv_engine_version": 2,
    }
    if settings.vault_role_id and settings.vault_secret_id:
        kwargs.update(auth_type="approle", role_id=settings.vault_role_id)
        kwargs["secret_id"] = settings.vault_secret_id.get_secret_value()
    elif settings.vault_token:
        kwargs.update(auth_type="token", token=settings.vault_token.get_secret_value())
    if settings.vault_cacert:
        kwargs["verify"] = str(settings.vault_cacert)
    return {
        "AIRFLOW__SECRETS__BACKEND": VAULT_BACKEND,
        "AIRFLOW__SECRETS__BACKEND_KWARGS": json.dumps(kwargs),
        # Tasks resolve connections in the worker too (Airflow 3 task SDK).
        "AIRFLOW__WORKERS__SECRETS_BACKEND": VAULT_BACKEND,
        "AIRFLOW__WORKERS__SECRETS_BACKEND_KWARGS": json.dumps(kwargs),
    }
