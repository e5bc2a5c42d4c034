"""The model service's key set stays current without a restart, and unknown keys cannot flood Vault."""

from __future__ import annotations

from pipelines.errors import PlatformError
from serving.auth import ApiKey, KeyRing, _digest


class Store:
    """What Vault holds, and how often it was read."""

    def __init__(self, **keys: str) -> None:
        self.keys = {_digest(secret): ApiKey(name, frozenset({"predict"})) for name, secret in keys.items()}
        self.reads = 0
        self.down = False

    def load(self) -> dict[str, ApiKey]:
        self.reads += 1
        if self.down:
            raise PlatformError("Vault at http://127.0.0.1:8200 is unreachable")
        return dict(self.keys)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def ring(store: Store, clock: Clock) -> KeyRing:
    keys = KeyRing(store.load, max_age_s=60, min_interval_s=5, clock=clock)
    keys.replace(store.load())
    return keys


def test_a_key_created_after_the_last_read_works_at_once():
    store, clock = Store(old="fo_old"), Clock()
    keys = ring(store, clock)
    clock.now += 10
    store.keys[_digest("fo_new")] = ApiKey("new", frozenset({"predict"}))
    assert keys.authenticate("fo_new").name == "new"
    assert keys.authenticate("fo_old").name == "old" and store.reads == 2


def test_unknown_keys_reread_vault_at_most_once_per_interval():
    store, clock = Store(old="fo_old"), Clock()
    keys = ring(store, clock)
    clock.now += 10
    for attempt in range(1000):
        assert keys.authenticate(f"fo_random{attempt}") is None
    assert store.reads == 2, "one reread for a thousand unknown keys"
    clock.now += 5
    assert keys.authenticate("fo_random") is None and store.reads == 3


def test_a_revoked_key_stops_working_within_the_max_age():
    store, clock = Store(gone="fo_gone"), Clock()
    keys = ring(store, clock)
    store.keys.clear()
    clock.now += 59
    assert keys.authenticate("fo_gone").name == "gone", "still inside the max age"
    clock.now += 1
    assert keys.authenticate("fo_gone") is None


def test_an_unreachable_vault_keeps_the_known_keys_and_is_retried_later():
    store, clock = Store(old="fo_old"), Clock()
    keys = ring(store, clock)
    store.down = True
    clock.now += 61
    assert keys.authenticate("fo_old").name == "old"
    assert keys.authenticate("fo_unknown") is None and store.reads == 2, "not retried inside the interval"
    store.down = False
    store.keys[_digest("fo_unknown")] = ApiKey("later", frozenset({"predict"}))
    clock.now += 5
    assert keys.authenticate("fo_unknown").name == "later"
