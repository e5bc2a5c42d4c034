"""Incident notification: every transition of an incident but a repeat (opened, cleared, acknowledged,
resolved) goes to each notifier the settings name (`PLATFORM_INCIDENT_NOTIFY`, a list of targets).

A target's scheme picks its notifier: `http://` and `https://` POST the incident as JSON (a chat tool's
incoming webhook, an on-call service's events API, or a relay of your own). The body is
`{"event": "opened", "incident": {...}}` with every field of the incident record; a target that does not
answer 2xx within 5 s fails, and the failure is logged and audited (`incident.notification_failed`),
never undoing the transition. A new kind of target is one class with `notify(event, incident)` and a
scheme in NOTIFIERS.
"""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from typing import TYPE_CHECKING, Protocol

from pipelines.errors import SettingsError
from pipelines.settings import Settings

if TYPE_CHECKING:
    from pipelines.alerting.incidents import Incident


class Notifier(Protocol):
    def notify(self, event: str, incident: Incident) -> None: ...


class Webhook:
    """POST `{"event", "incident"}` as JSON to a URL."""

    timeout_s = 5.0

    def __init__(self, url: str):
        self.url = url

    def __str__(self) -> str:  # no credentials or tokens of the URL's query in logs and the ledger
        parts = urllib.parse.urlsplit(self.url)
        return f"webhook {parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}{parts.path}"

    def notify(self, event: str, incident: Incident) -> None:
        body = json.dumps({"event": event, "incident": incident.as_json()}).encode()
        headers = {"Content-Type": "application/json"}
        request = urllib.request.Request(self.url, data=body, method="POST", headers=headers)  # noqa: S310 (http(s))
        with urllib.request.urlopen(request, timeout=self.timeout_s) as answer:  # noqa: S310 # nosec B310
            if not 200 <= answer.status < 300:
                raise OSError(f"answered {answer.status}")


NOTIFIERS = {"http": Webhook, "https": Webhook}


def notifiers(settings: Settings) -> list[Notifier]:
    """The notifiers of `settings.incident_notify`; SettingsError naming a target no notifier takes."""
    out = []
    for target in settings.incident_notify:
        scheme = urllib.parse.urlsplit(target).scheme
        if scheme not in NOTIFIERS:
            raise SettingsError(f"PLATFORM_INCIDENT_NOTIFY: no notifier takes {scheme or 'a target without a scheme'}"
                                f" ({target.split('?')[0]}); known: {sorted(NOTIFIERS)}")  # fmt: skip
        out.append(NOTIFIERS[scheme](target))
    return out
