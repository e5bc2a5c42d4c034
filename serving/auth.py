"""API keys: only their SHA-256 lives in Vault (`platform/serving/api-keys/<name>`), with scopes:
`predict` (every use case's predictions), `predict:<use case>` (that use case's only), `admin`.
A presented key is hashed and compared with every stored hash in constant time."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

import hvac.exceptions

from pipelines.errors import SettingsError
from pipelines.security.vault import KV_MOUNT, Vault

KEYS_PATH = "serving/api-keys"
SCOPES = ("predict", "admin")
USECASE_SCOPE = re.compile(r"^predict:[a-z][a-z0-9_]{1,39}$")


@dataclass(frozen=True)
class ApiKey:
    name: str
    scopes: frozenset[str]


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(vault: Vault, name: str, scopes: list[str]) -> str:
    """A new random key under `name` (operator); returns the key, which is shown once and never stored."""
    unknown = {scope for scope in scopes if scope not in SCOPES and not USECASE_SCOPE.match(scope)}
    if unknown or not scopes:
        raise SettingsError(f"scopes must be among {', '.join(SCOPES)} or predict:<use case>; got {scopes}")
    key = f"fo_{secrets.token_urlsafe(32)}"
    vault.write_secret(f"{KEYS_PATH}/{name}", {"sha256": _digest(key), "scopes": sorted(scopes)})
    return key


def load_keys(vault: Vault) -> dict[str, ApiKey]:
    """{sha256: ApiKey} of every stored key (serving reads hashes only)."""
    with vault.errors(f"listing {KV_MOUNT}/{KEYS_PATH}"):
        try:
            names = vault.client.secrets.kv.v2.list_secrets(path=KEYS_PATH, mount_point=KV_MOUNT)["data"]["keys"]
        except hvac.exceptions.InvalidPath:  # no key yet
            return {}
    keys = {}
    for name in names:
        stored = vault.read_secret(f"{KEYS_PATH}/{name}") or {}
        if "sha256" in stored:
            keys[stored["sha256"]] = ApiKey(name, frozenset(stored.get("scopes", [])))
    return keys


def authenticate(keys: dict[str, ApiKey], presented: str | None) -> ApiKey | None:
    """The key's owner, or None. Compares against every stored hash so timing does not reveal which matched."""
    if not presented:
        return None
    digest = _digest(presented)
    found = None
    for stored, key in keys.items():
        if hmac.compare_digest(stored, digest):
            found = key
    return found
