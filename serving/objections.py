"""The data subjects of a use case who object to automated decisions (UAE PDPL Art. 18), as the service holds them:
their salted hashes from Vault (`platform objection`), reread every `max_age_s` so that a new objection holds
within that time without a restart; a reread that fails keeps the known ones."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


class Objections:
    def __init__(self, load: Callable[[], set[str]], max_age_s: float = 60.0,
                 clock: Callable[[], float] = time.monotonic):  # fmt: skip
        self._load, self._clock, self.max_age_s = load, clock, max_age_s
        self.hashes: set[str] = set()
        self.loaded_at = -float("inf")
        self._lock = threading.Lock()

    def current(self) -> set[str]:
        """The hashes, reread first when they are older than max_age_s (blocking: call from a worker thread)."""
        now = self._clock()
        if now - self.loaded_at >= self.max_age_s:
            with self._lock:
                if now - self.loaded_at >= self.max_age_s:
                    try:
                        self.hashes = self._load()
                    except Exception as exc:  # noqa: BLE001 (Vault down: the known objections still hold)
                        log.warning("could not reread the objections (%s); keeping the %d known", exc, len(self.hashes))
                    self.loaded_at = now
        return self.hashes
