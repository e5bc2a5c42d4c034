"""Vault bootstrap and secrets against real OpenBao servers: idempotent, least privilege, persistent,
and clear when Vault is unreachable or a secret is missing."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path

import hvac
import pytest

from pipelines.errors import AccessDenied, SecretMissing, VaultUnavailable
from pipelines.security.artifacts import seal, unseal
from pipelines.security.secrets import (
    LOCAL_POSTGRES,
    PII_SALT_VARIABLE,
    connection,
    pii_salt,
    postgres_connection,
    put_connection,
    seed_local_secrets,
    variable,
)
from pipelines.security.vault import (
    ARTIFACT_KEY,
    POLICY_DIR,
    ROLES,
    SIGNING_KEY,
    TRANSIT_MOUNT,
    LocalOpenBao,
    Vault,
    bootstrap,
    issue_credentials,
    platform_vault,
    role_vault,
)
from pipelines.settings import load_settings
from tests.conftest import free_port


def test_bootstrap_is_idempotent_and_matches_the_repo(openbao):
    client = openbao.root.client
    keys_before = {k: client.secrets.transit.read_key(k, mount_point=TRANSIT_MOUNT)["data"]
                   for k in (ARTIFACT_KEY, SIGNING_KEY)}  # fmt: skip
    first, second = bootstrap(openbao.root), bootstrap(openbao.root)
    assert first == second and set(first) == set(ROLES)
    for name, before in keys_before.items():
        after = client.secrets.transit.read_key(name, mount_point=TRANSIT_MOUNT)["data"]
        assert after["keys"] == before["keys"], f"bootstrap changed transit key {name}"
    assert keys_before[ARTIFACT_KEY]["type"] == "aes256-gcm96"
    assert keys_before[SIGNING_KEY]["type"] == "ed25519"
    for path in POLICY_DIR.glob("*.hcl"):
        assert client.sys.read_policy(path.stem)["data"]["rules"] == path.read_text()
    for role, policies in ROLES.items():
        assert client.auth.approle.read_role(role)["data"]["token_policies"] == list(policies)
    mounts = client.sys.list_mounted_secrets_engines()["data"]
    assert mounts["platform/"]["options"]["version"] == "2"


def test_seeding_never_replaces_an_existing_salt(openbao):
    salt = variable(openbao.root, PII_SALT_VARIABLE)
    seed_local_secrets(openbao.root)
    assert variable(openbao.root, PII_SALT_VARIABLE) == salt
    assert len(salt) == 64


def test_pipelines_read_their_secrets_as_the_training_role(tmp_path):
    settings = load_settings(data_root=tmp_path)  # PLATFORM_VAULT_* of the session: AppRole training
    assert len(pii_salt(settings)) == 64
    pg = postgres_connection(settings)
    assert (pg.host, pg.port, pg.user, pg.database) == ("127.0.0.1", 5432, "postgres", "flightops")


def test_a_connection_with_special_characters_round_trips(openbao, tmp_path):
    fields = {**LOCAL_POSTGRES, "login": "ml@ops", "password": "p/w:@x",  # pragma: allowlist secret
              "host": "db", "port": 5433,
              "schema": "wh", "extra": '{"sslmode": "require"}'}  # fmt: skip
    put_connection(openbao.root, "pg_special", fields)
    pg = postgres_connection(load_settings(data_root=tmp_path, postgres_conn_id="pg_special"))
    assert (pg.host, pg.port, pg.user, pg.password, pg.database, pg.sslmode) == (
        "db", 5433, "ml@ops", "p/w:@x", "wh", "require")  # fmt: skip
    expected = "postgresql+psycopg://ml%40ops:p%2Fw%3A%40x@db:5433/wh?sslmode=require"  # pragma: allowlist secret
    assert pg.sqlalchemy_url("psycopg") == expected


def test_a_missing_secret_says_where_to_write_it(tmp_path):
    settings = load_settings(data_root=tmp_path, postgres_conn_id="nowhere")
    with pytest.raises(SecretMissing, match=r"'nowhere' is not in Vault.*bao kv put -mount=platform"):
        postgres_connection(settings)


@pytest.mark.parametrize(
    ("role", "allowed", "denied"),
    [
        ("training", ["read_salt", "read_connection"], ["read_api_keys", "rotate", "decrypt"]),
        ("evaluation", ["read_salt", "read_connection"], ["read_api_keys", "rotate", "datakey"]),
        # serving reads the PostgreSQL connection (prediction log, ledger) but not the S3 keys
        ("serving", ["read_api_keys", "read_salt", "read_connection"], ["read_s3_keys", "rotate", "datakey"]),
        ("operator", ["rotate", "read_salt"], ["decrypt", "datakey"]),
    ],
)
def test_each_role_can_do_exactly_its_part(openbao, role, allowed, denied):
    openbao.root.write_secret("serving/api-keys/consumer", {"sha256": "0" * 64})
    vault = openbao.role(role)
    transit = TRANSIT_MOUNT
    actions = {
        "read_salt": lambda: vault.read_secret(f"airflow/variables/{PII_SALT_VARIABLE}"),
        "read_connection": lambda: vault.read_secret("airflow/connections/platform_postgres"),
        "read_s3_keys": lambda: vault.read_secret("airflow/connections/platform_artifacts"),
        "read_api_keys": lambda: vault.read_secret("serving/api-keys/consumer"),
        "rotate": lambda: vault.client.secrets.transit.rotate_key(SIGNING_KEY, mount_point=transit),
        "decrypt": lambda: vault.client.secrets.transit.decrypt_data(
            ARTIFACT_KEY, "vault:v1:AAAA", mount_point=transit
        ),
        "datakey": lambda: vault.client.secrets.transit.generate_data_key(
            ARTIFACT_KEY, "plaintext", mount_point=transit
        ),
    }
    for name in allowed:
        with vault.errors(name):
            actions[name]()
    for name in denied:
        with pytest.raises((AccessDenied, hvac.exceptions.Forbidden)):
            with vault.errors(name):
                actions[name]()


def test_an_unreachable_vault_is_named_with_the_fix():
    port = free_port()  # nothing listens there
    vault = Vault(f"http://127.0.0.1:{port}", token="unused")
    with pytest.raises(VaultUnavailable, match=rf"127.0.0.1:{port} is unreachable.*VAULT_ADDR"):
        vault.read_secret("airflow/variables/pii_salt")


def test_no_credentials_is_refused_before_any_request():
    with pytest.raises(SecretMissing, match="PLATFORM_VAULT_ROLE_ID"):
        Vault("http://127.0.0.1:8200")


def test_the_platforms_own_server_keeps_keys_and_secrets_across_restarts(tmp_path, monkeypatch):
    """`make run` twice: the second run must decrypt the first one's artifacts and hash with the same salt."""
    for name in ("PLATFORM_VAULT_ADDR", "PLATFORM_VAULT_ROLE_ID", "PLATFORM_VAULT_SECRET_ID"):
        monkeypatch.delenv(name)
    base = load_settings(data_root=tmp_path / "var", vault_port=free_port())
    with platform_vault(base) as first:
        salt = pii_salt(first)
        envelope = seal(Vault.from_settings(first), b"yesterday's model")
    assert oct((tmp_path / "var" / "vault" / "init.json").stat().st_mode)[-3:] == "600"
    with platform_vault(base, role="serving") as second:
        assert unseal(Vault.from_settings(second), envelope) == b"yesterday's model"
    server = LocalOpenBao(base.vault_dir, base.vault_port, base.audit_dir / "vault_audit.log")
    process = server.start()
    try:
        assert variable(server.root(), PII_SALT_VARIABLE) == salt
        assert connection(server.root(), "platform_postgres")["host"] == "127.0.0.1"
    finally:
        server.stop(process)
    audit_log = (base.audit_dir / "vault_audit.log").read_text()
    assert "transit/decrypt/artifacts" in audit_log  # OpenBao's own audit device saw the decrypt


def test_platform_bootstraps_an_external_vault_given_only_its_address_and_a_token(tmp_path):
    """Against a Vault the platform did not start (here `bao server -dev`), bootstrap is the same code."""
    port, token = free_port(), secrets.token_hex(16)
    bao = shutil.which("bao", path=str(Path(sys.executable).parent))
    server = subprocess.Popen([bao, "server", "-dev", f"-dev-root-token-id={token}",
                               f"-dev-listen-address=127.0.0.1:{port}"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, env={**os.environ, "HOME": str(tmp_path)})  # fmt: skip
    try:
        addr = f"http://127.0.0.1:{port}"
        admin = Vault(addr, token=token)
        deadline = time.monotonic() + 30
        while True:
            try:
                admin.client.sys.read_health_status(method="GET")
                break
            except Exception:
                assert time.monotonic() < deadline, "bao server -dev did not start"
                time.sleep(0.1)
        env = {k: v for k, v in os.environ.items() if not k.startswith("PLATFORM_VAULT_")}
        env.update(VAULT_ADDR=addr, VAULT_TOKEN=token, PLATFORM_DATA_ROOT=str(tmp_path / "var"))
        cli = [sys.executable, "-m", "pipelines.cli", "vault-bootstrap"]
        for _ in range(2):  # idempotent
            done = subprocess.run(cli, env=env, capture_output=True, text=True, timeout=120)
            assert done.returncode == 0, done.stderr
            assert "role training" in done.stdout and "role serving" in done.stdout
        audit = subprocess.run([*cli, "--audit-file", str(tmp_path / "audit.log")], env=env,
                               capture_output=True, text=True, timeout=120)  # fmt: skip
        assert audit.returncode == 1 and "declare one in its configuration" in audit.stderr
        training = role_vault(admin, "training")
        envelope = seal(training, b"a model")
        assert unseal(role_vault(admin, "serving"), envelope) == b"a model"
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_a_wrong_secret_id_is_refused_with_the_fix(openbao):
    role_id, _ = issue_credentials(openbao.root, "training")
    vault = Vault(openbao.server.addr, role_id=role_id, secret_id="00000000-0000-0000-0000-000000000000")
    with pytest.raises(AccessDenied, match="refused the AppRole login.*PLATFORM_VAULT_SECRET_ID"):
        vault.read_secret("airflow/variables/pii_salt")
