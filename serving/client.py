"""The model service as the deployer reaches it: reload the plans, smoke-test, read status; and one
use case of it (`UseCaseEndpoint`), which is what a canary release drives.

Its address and the deployer's API key (scopes admin and predict) are the Airflow connection
PLATFORM_MODEL_SERVICE_CONN_ID in Vault: conn_type http, schema http|https, host, port,
password = the key, extra {"ca_cert": path} for a private CA.
"""

from __future__ import annotations

import json

import httpx

from pipelines.errors import DeployFailed
from pipelines.security.secrets import connection, put_connection
from pipelines.security.vault import Vault
from pipelines.settings import Settings
from pipelines.usecases.spec import UseCase


class ServiceClient:
    def __init__(self, base: str, key: str, verify: bool | str = True, timeout_s: float = 120) -> None:
        self.base = base.rstrip("/")
        self.http = httpx.Client(
            base_url=self.base, headers={"Authorization": f"Bearer {key}"}, verify=verify, timeout=timeout_s
        )

    @classmethod
    def from_connection(cls, settings: Settings, vault: Vault) -> ServiceClient:
        fields = connection(vault, settings.model_service_conn_id)
        extra = fields.get("extra") or {}
        extra = json.loads(extra) if isinstance(extra, str) else extra
        base = f"{fields.get('schema') or 'http'}://{fields.get('host') or '127.0.0.1'}:{fields.get('port') or 3000}"
        return cls(base, fields.get("password") or "", extra.get("ca_cert", True))

    def _call(self, path: str, body: dict) -> dict:
        try:
            response = self.http.post(path, json=body)
        except httpx.HTTPError as exc:
            raise DeployFailed(
                f"the model service at {self.base} is unreachable ({type(exc).__name__}: {exc}); "
                "start it (`make up`) or fix the model_service connection in Vault"
            ) from exc
        if response.status_code != 200:
            raise DeployFailed(f"{self.base}{path} answered {response.status_code}: {response.text[:500]}")
        return response.json()

    def status(self) -> dict:
        return self._call("/status", {})

    def reload(self) -> dict:
        return self._call("/admin/reload", {})

    def predict(self, usecase: UseCase, items: list[dict]) -> dict:
        return self._call(usecase.serving.route, {usecase.serving.batch: items})

    def endpoint(self, usecase: UseCase) -> UseCaseEndpoint:
        return UseCaseEndpoint(self, usecase)


class UseCaseEndpoint:
    """One use case of the service: its status, a reload answered with its status, its predictions."""

    def __init__(self, client: ServiceClient, usecase: UseCase) -> None:
        self.client, self.usecase = client, usecase

    def _of(self, status: dict) -> dict:
        mine = status.get("usecases", {}).get(self.usecase.name)
        if mine is None:
            raise DeployFailed(
                f"the model service at {self.client.base} does not serve {self.usecase.name} "
                f"(it serves {sorted(status.get('usecases', {}))}); add it to PLATFORM_SERVED_USECASES"
            )
        return mine

    def status(self) -> dict:
        return self._of(self.client.status())

    def reload(self) -> dict:
        return self._of(self.client.reload())

    def predict(self, items: list[dict]) -> dict:
        return self.client.predict(self.usecase, items)


def register_service(vault: Vault, settings: Settings, port: int, key: str) -> None:
    """Record the local model service and the deployer's key as the model_service connection (operator)."""
    put_connection(
        vault,
        settings.model_service_conn_id,
        {"conn_type": "http", "schema": "http", "host": "127.0.0.1", "port": port, "password": key},
    )
