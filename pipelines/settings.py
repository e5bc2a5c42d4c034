"""The platform's one source of configuration: environment variables with embedded defaults.

Every variable is `PLATFORM_<FIELD>` (for example `PLATFORM_WAREHOUSE_TARGET=postgres`).
Read once with `get_settings()` and pass the object down; stages never read the
environment themselves.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from pipelines.errors import SettingsError

REPO_ROOT = Path(__file__).resolve().parents[1]
ENV_PREFIX = "PLATFORM_"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True, populate_by_name=True)

    data_root: Path = Field(REPO_ROOT / "var", description="Where every generated file lives.")
    warehouse_target: Literal["duckdb", "postgres"] = Field(
        "duckdb", description="dbt target: an embedded DuckDB file or PostgreSQL."
    )
    postgres_conn_id: str = Field(
        "platform_postgres",
        description="Airflow connection (kept in Vault) of the PostgreSQL warehouse, Feast offline store and ledger.",
    )
    feast_env: Literal["local", "production"] = Field(
        "local", description="Which feature_repo/feature_store.<env>.yaml to use."
    )
    redis_url: str = Field("redis://127.0.0.1:6379/0", description="Feast online store (production).")
    artifact_store_uri: str = Field("", description="file:// folder or s3://bucket/prefix.")
    artifact_conn_id: str = Field(
        "platform_artifacts", description="Airflow connection (in Vault) with the S3 keys, region and endpoint."
    )
    allowed_regions: list[str] = Field(["me-central-1"], min_length=1)
    airflow_home: Path | None = None
    dags_folder: Path = Field(REPO_ROOT / "dags", description="Where Airflow finds DAG files.")
    airflow_executor: Literal["LocalExecutor", "CeleryExecutor"] = Field(
        "LocalExecutor", description="CeleryExecutor: tasks go through the Celery broker to `airflow celery worker`s."
    )
    airflow_metadata_url: SecretStr | None = Field(
        None, description="Airflow's metadata DB (SQLAlchemy URL); default SQLite under the Airflow home. "
        "CeleryExecutor needs PostgreSQL: its task results are kept there too."
    )  # fmt: skip
    airflow_idle_sleep_seconds: float = Field(
        0.1, gt=0, description="How long an idle scheduler loop sleeps (Airflow's default 1 s): the gap between "
        "one task's end and the next one's start (python -m bench.task_gap), against the idle scheduler's CPU."
    )  # fmt: skip
    celery_broker_url: str = Field("redis://127.0.0.1:6379/1", description="CeleryExecutor's broker (Redis).")
    airflow_api_port: int = Field(
        8080, ge=1, le=65535, description="Port of Airflow's API server and UI on 127.0.0.1 (make up, make run)."
    )
    airflow_timezone: str = Field(
        "UTC", description="Airflow's default time zone (the UI's dates); each use case's DAGs keep the spec's own."
    )
    # Vault / OpenBao. Without an address the platform runs its own OpenBao server under the data root.
    vault_addr: str = Field("", validation_alias=AliasChoices("PLATFORM_VAULT_ADDR", "VAULT_ADDR"))
    vault_token: SecretStr | None = Field(None, validation_alias=AliasChoices("PLATFORM_VAULT_TOKEN", "VAULT_TOKEN"))
    vault_role_id: str = Field("", description="AppRole role id (used instead of a token when set).")
    vault_secret_id: SecretStr | None = None
    vault_evaluation_role_id: str = Field("", description="AppRole of the evaluation gate (decrypts champions).")
    vault_evaluation_secret_id: SecretStr | None = None
    vault_cacert: Path | None = Field(None, validation_alias=AliasChoices("PLATFORM_VAULT_CACERT", "VAULT_CACERT"))
    vault_port: int = Field(8200, ge=1, le=65535, description="Port of the platform's own OpenBao server.")
    vault_audit_device: str = Field(
        "file", description="The Vault audit device whose HMACs the compliance report matches decrypts against."
    )
    audit_target: Literal["file", "postgres"] = Field(
        "file", description="Audit ledger: JSON lines under the data root, or a PostgreSQL table."
    )
    actor: str = Field("", description="Who the audit ledger names for this process; defaults to user@host.")
    source_dir: Path | None = Field(
        None, description="Folder of the package_file tables' files; defaults to the installed package's data."
    )
    seed: int = 2013
    prediction_log: Literal["parquet", "postgres"] = Field(
        "parquet", description="Where the model service logs every prediction (postgres: production)."
    )
    serving_port: int = Field(3000, ge=1, le=65535, description="Port of the model service (make run, make up).")
    api_key_max_age_s: float = Field(
        60.0,
        gt=0,
        le=3600,
        description="The model service rereads its API keys from Vault this often (a revoked "
        "key stops working within it); an unknown key rereads them at once, at most every 2 s.",
    )
    # The real-time path (pipelines/streaming; the streams themselves are in the use-case spec).
    stream_broker_url: str = Field(
        "redis://127.0.0.1:6379/2", description="The event broker: Redis Streams (a database of its own)."
    )
    stream_namespace: str = Field(
        "", pattern=r"^[A-Za-z0-9_.-]*$", description="Prefix of this platform's streams on the broker, which its "
        "producers publish under; empty: platform-<8 hex digits of the data root's path> (two data roots on one "
        "broker never share a stream). Set it in production, where the operational systems must know it."
    )  # fmt: skip
    stream_processor_port: int = Field(8300, ge=1, le=65535, description="The stream processor's /healthz, /metrics.")
    exporter_port: int = Field(9464, ge=1, le=65535, description="The platform exporter's /metrics (Prometheus).")
    alert_receiver_port: int = Field(9465, ge=1, le=65535, description="The platform's Alertmanager webhook receiver.")
    prometheus_port: int = Field(9090, ge=1, le=65535, description="Prometheus, started by `make up` on loopback.")
    alertmanager_port: int = Field(9093, ge=1, le=65535, description="Alertmanager, started by `make up` on loopback.")
    incident_notify: list[str] = Field(
        [], description="Where every incident's transitions go (pipelines/alerting/notify.py): http(s) webhooks."
    )
    # Use cases: one spec per model (pipelines/usecases/spec.py).
    usecases_dir: Path = Field(REPO_ROOT / "usecases", description="Where the use-case specs live.")
    served_usecases: list[str] = Field(
        [], description="The use cases the model service serves (each at its spec's serving.route); [] = every spec."
    )
    default_usecase: str = Field(
        "", description="The use case a command means without --usecase (make run and make up set it: USECASE)."
    )
    usecase_overrides: dict[str, dict[str, Any]] = Field(
        {}, description='Per use case, dotted spec fields to override: {"taxi_fares": {"gate.tolerance_abs": 0.01}}.'
    )
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto: CUDA when present.")
    dask_scheduler: str = Field(
        "", description="Dask scheduler (tcp://host:8786) for XGBoost through xgboost.dask; empty: in the task."
    )
    # Every model's serving constraints (the gate checks them; its thresholds are in the use-case spec).
    onnx_parity_tolerance: float = Field(1e-4, gt=0, description="Largest |ONNX - native| probability allowed.")
    onnx_latency_budget_ms: float = Field(5.0, gt=0, description="ONNX Runtime p99 for one row.")
    cost_per_hour_cpu: float = Field(0.10, ge=0, description="USD per hour of a CPU training task (estimate).")
    cost_per_hour_gpu: float = Field(2.50, ge=0, description="USD per hour of a GPU training task (estimate).")
    # Canary releases (seconds-long windows for make run and the tests; hours in production).
    canary_steps: list[float] = Field([5, 25, 50, 100], description="Challenger traffic shares; the last is 100.")
    canary_observe_seconds: float = Field(10, gt=0, description="Observation window of each canary step.")
    canary_max_wait_seconds: float = Field(120, gt=0, description="Longest a step waits for enough traffic.")
    canary_min_predictions: int = Field(100, ge=1, description="Challenger predictions a step needs to judge.")
    canary_max_error_rate_increase: float = Field(0.01, ge=0, description="Over the champion's error rate.")
    canary_max_latency_ratio: float = Field(2.0, ge=1, description="Challenger scoring p95 / champion's ...")
    canary_latency_slack_ms: float = Field(5.0, ge=0, description="... plus this many milliseconds.")
    canary_max_distribution_shift: float = Field(0.2, gt=0, le=1, description="KS statistic of the probabilities.")
    # Drift monitoring (its retraining policy is in the use-case spec).
    drift_python: Path = Field(REPO_ROOT / ".venv-drift" / "bin" / "python", description="alibi-detect's interpreter.")
    model_service_conn_id: str = Field(
        "model_service", description="Airflow connection (in Vault) of the model service: URL and deployer key."
    )

    @field_validator("data_root", "airflow_home", "dags_folder", "source_dir", "vault_cacert", "usecases_dir")
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        return value.expanduser().resolve() if value is not None else None

    @field_validator("airflow_timezone")
    @classmethod
    def _time_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not an IANA time zone, e.g. UTC or Asia/Dubai") from None
        return value

    @field_validator("drift_python")
    @classmethod
    def _interpreter(cls, value: Path) -> Path:
        return value.expanduser().absolute()  # not resolved: a virtualenv's python is a symlink to the base one

    @field_validator("canary_steps")
    @classmethod
    def _canary_steps(cls, value: list[float]) -> list[float]:
        if not value or value[-1] != 100 or any(b <= a for a, b in zip(value, value[1:], strict=False)):
            raise ValueError("must rise strictly and end at 100, e.g. [5, 25, 50, 100]")
        if value[0] <= 0:
            raise ValueError("must start above 0")
        return value

    @field_validator("artifact_store_uri")
    @classmethod
    def _artifact_scheme(cls, value: str) -> str:
        if value and not value.startswith(("file://", "s3://")):
            raise ValueError("must start with file:// or s3://")
        return value

    # Derived locations: one place names every folder under the data root.
    @property
    def raw_dir(self) -> Path:
        return self.data_root / "raw"

    @property
    def warehouse_path(self) -> Path:
        return self.data_root / "warehouse" / "warehouse.duckdb"

    @property
    def feature_export_dir(self) -> Path:
        return self.data_root / "features"

    @property
    def feast_dir(self) -> Path:
        return self.data_root / "feast"

    @property
    def validation_dir(self) -> Path:
        return self.data_root / "validation"

    @property
    def airflow_dir(self) -> Path:
        return self.airflow_home or self.data_root / "airflow"

    @property
    def artifact_uri(self) -> str:
        return self.artifact_store_uri or (self.data_root / "artifacts").as_uri()

    @property
    def audit_dir(self) -> Path:
        return self.data_root / "audit"

    @property
    def vault_dir(self) -> Path:
        return self.data_root / "vault"

    @property
    def broker_namespace(self) -> str:
        """`stream_namespace`, or the one derived from the data root when it is empty."""
        import hashlib

        return self.stream_namespace or f"platform-{hashlib.sha256(str(self.data_root).encode()).hexdigest()[:8]}"


def settings_environment(settings: Settings) -> dict[str, str]:
    """The PLATFORM_* variables that reproduce `settings` in a child process (secrets excluded)."""
    env = {}
    for name, value in settings.model_dump(exclude_none=True).items():
        if isinstance(value, SecretStr):
            continue
        env[f"{ENV_PREFIX}{name.upper()}"] = json.dumps(value) if isinstance(value, list | dict) else str(value)
    return env


# Secrets that older configurations passed in the environment, and where they live now.
MOVED_TO_VAULT = {
    "PLATFORM_POSTGRES_URL": "the Airflow connection named by PLATFORM_POSTGRES_CONN_ID "
    "(Vault KV platform/airflow/connections/platform_postgres)",
    "PLATFORM_PII_SALT": "the Airflow variable pii_salt (Vault KV platform/airflow/variables/pii_salt)",
}


def load_settings(**overrides) -> Settings:
    """Build settings from the environment (and explicit overrides), with readable errors."""
    moved = [f"{name} is no longer read: it is kept in {where}" for name, where in MOVED_TO_VAULT.items()
             if name in os.environ]  # fmt: skip
    if moved:
        raise SettingsError("secrets belong in Vault:\n  " + "\n  ".join(moved) + "\n  Unset the variable.")
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else "?"
            problems.append(f"{ENV_PREFIX}{field.upper()}: {error['msg']} (got {error.get('input')!r})")
        raise SettingsError("invalid platform settings:\n  " + "\n  ".join(problems)) from None
    return settings


@functools.cache
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return load_settings()
