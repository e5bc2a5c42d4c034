"""API keys: only their SHA-256 lives in Vault (`platform/serving/api-keys/<name>`), with scopes:
`predict` (every use case's predictions), `predict:<use case>` (that use case's only), `admin`.
A presented key is hashed and compared with every stored hash in constant time."""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import hvac.exceptions

from pipelines.errors import SettingsError
from pipelines.security.vault import KV_MOUNT, Vault

log = logging.getLogger(__name__)

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


class KeyRing:
    """The service's key set, current without a restart: reread (`load`, from Vault) when it is older than
    `max_age_s`, so a revoked key stops working within that time, and when an unknown key is presented, so
    a key created a moment ago works at once; the second at most once every `min_interval_s`, however many
    unknown keys arrive, so random keys cannot turn into a flood of Vault reads. A reread that fails (Vault
    unreachable) keeps the keys already known and is retried after `min_interval_s`."""

    def __init__(self, load: Callable[[], dict[str, ApiKey]], max_age_s: float = 60.0, min_interval_s: float = 2.0,
                 clock: Callable[[], float] = time.monotonic):  # fmt: skip
        self._load, self._clock = load, clock
        self.max_age_s, self.min_interval_s = max_age_s, min_interval_s
        self.keys: dict[str, ApiKey] = {}
        self.loaded_at = self.tried_at = -float("inf")  # never read: the first request reads them
        self._lock = threading.Lock()

    def replace(self, keys: dict[str, ApiKey]) -> None:
        """The key set an admin reload read."""
        with self._lock:
            self.keys, self.loaded_at = keys, self._clock()
            self.tried_at = self.loaded_at

    def cached(self, presented: str | None) -> ApiKey | None:
        """The presented key's owner in the key set as it is (no Vault read), or None."""
        return authenticate(self.keys, presented)

    @property
    def stale(self) -> bool:
        return self._clock() - self.loaded_at >= self.max_age_s

    def authenticate(self, presented: str | None) -> ApiKey | None:
        """The presented key's owner, or None; rereads the key set first when it is due (blocking: call it from
        a worker thread, not the event loop)."""
        if self.stale:
            self._reread(self._clock())
        key = authenticate(self.keys, presented)
        if key is None and presented and self._reread(self._clock()):
            key = authenticate(self.keys, presented)
        return key

    def _reread(self, now: float) -> bool:
        """Reread the key set unless one was tried less than min_interval_s ago; whether it was reread."""
        with self._lock:
            if now - self.tried_at < self.min_interval_s:
                return False
            self.tried_at = now
            try:
                self.keys, self.loaded_at = self._load(), now
            except Exception as exc:  # noqa: BLE001 (Vault down: the known keys keep working, retried later)
                log.warning("could not reread the API keys (%s); keeping the %d known", exc, len(self.keys))
                return False
            return True
