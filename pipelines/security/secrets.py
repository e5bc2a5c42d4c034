"""The platform's secrets, read from Vault KV v2 where Airflow's VaultBackend reads them too.

Layout under the `platform` KV mount (the same paths Airflow resolves connections and
variables from, so one secret serves a DAG task and a plain Python call alike):

    airflow/connections/<conn_id>   an Airflow connection as JSON fields (conn_type, host, login, ...)
    airflow/variables/<key>         {"value": ...}; `pii_salt` is the PII-hashing salt
    serving/api-keys/<name>         API-key hashes (serving)
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from urllib.parse import quote

from pipelines.errors import SecretMissing
from pipelines.security.vault import KV_MOUNT, Vault
from pipelines.settings import Settings

CONNECTIONS_PATH = "airflow/connections"
VARIABLES_PATH = "airflow/variables"
PII_SALT_VARIABLE = "pii_salt"
# The local OpenBao is seeded with the machine's trust-auth PostgreSQL; a real Vault holds the real one.
LOCAL_POSTGRES = {
    "conn_type": "postgres",
    "host": "127.0.0.1",
    "port": 5432,
    "login": "postgres",
    "password": "",
    "schema": "flightops",
    "extra": json.dumps({"sslmode": "prefer"}),
}


@dataclass(frozen=True)
class PostgresConnection:
    """A PostgreSQL connection as dbt, Feast, libpq and SQLAlchemy want it."""

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

    def dsn(self) -> str:
        """A libpq connection string for psycopg2."""
        return self.sqlalchemy_url("psycopg2").replace("postgresql+psycopg2://", "postgresql://", 1)


def _put_hint(path: str, example: str) -> str:
    return f"write it with `bao kv put -mount={KV_MOUNT} {path} {example}`"


def connection(vault: Vault, conn_id: str) -> dict:
    """An Airflow connection's fields, from the path Airflow's VaultBackend reads."""
    path = f"{CONNECTIONS_PATH}/{conn_id}"
    fields = vault.read_secret(path)
    if fields is None:
        raise SecretMissing(
            f"connection {conn_id!r} is not in Vault at {KV_MOUNT}/{path}; "
            + _put_hint(path, "conn_type=postgres host=... login=... password=... schema=...")
        )
    return fields


def variable(vault: Vault, key: str) -> str:
    path = f"{VARIABLES_PATH}/{key}"
    data = vault.read_secret(path)
    if not data or "value" not in data:
        raise SecretMissing(f"variable {key!r} is not in Vault at {KV_MOUNT}/{path}; " + _put_hint(path, "value=..."))
    return data["value"]


def pii_salt(settings: Settings) -> str:
    """The salt that dbt staging hashes personal data (tail numbers) with."""
    return variable(Vault.from_settings(settings), PII_SALT_VARIABLE)


def postgres_connection(settings: Settings) -> PostgresConnection:
    """The warehouse's PostgreSQL connection, named by PLATFORM_POSTGRES_CONN_ID."""
    fields = connection(Vault.from_settings(settings), settings.postgres_conn_id)
    if fields.get("conn_type") not in ("postgres", "postgresql"):
        raise SecretMissing(f"connection {settings.postgres_conn_id!r} is a {fields.get('conn_type')!r}, not postgres")
    extra = fields.get("extra") or {}
    extra = json.loads(extra) if isinstance(extra, str) else extra
    return PostgresConnection(
        host=fields.get("host") or "127.0.0.1",
        port=int(fields.get("port") or 5432),
        user=fields.get("login") or "postgres",
        password=fields.get("password") or "",
        database=fields.get("schema") or "postgres",
        sslmode=extra.get("sslmode", "prefer"),
    )


def put_connection(vault: Vault, conn_id: str, fields: dict) -> None:
    """Write (or replace) an Airflow connection in Vault."""
    vault.write_secret(f"{CONNECTIONS_PATH}/{conn_id}", fields)


def seed_local_secrets(vault: Vault) -> None:
    """First start of the platform's own OpenBao: a random PII salt and the local PostgreSQL.

    Never replaces what is there: a new salt would change every hashed key.
    """
    vault.write_secret(f"{VARIABLES_PATH}/{PII_SALT_VARIABLE}", {"value": secrets.token_hex(32)}, only_if_absent=True)
    vault.write_secret(f"{CONNECTIONS_PATH}/platform_postgres", LOCAL_POSTGRES, only_if_absent=True)
