"""The flight-delay BentoML service: `POST /predict` for consumers, `/admin/reload` for operators.

Run with `bentoml serve serving.service:FlightDelay` (add `--ssl-certfile/--ssl-keyfile` for HTTPS).
It reaches Vault as the `serving` AppRole (PLATFORM_VAULT_ADDR, _ROLE_ID, _SECRET_ID). It is ready
only once the champion's manifest verified, its ONNX file decrypted and its feature contract held;
until then `/readyz` answers 503 and `/status` says why.
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Annotated

import bentoml
from pydantic import Field

from serving.schema import MAX_BATCH, FlightRequest, Prediction, PredictResponse

VARIANT = "champion"
# Which scope each protected route needs; everything else (docs, /status, probes) is open.
ROUTE_SCOPES = {"/predict": "predict", "/admin/reload": "admin"}


class State:
    """What the service instance has loaded, shared with the auth middleware of the same process."""

    keys: dict = {}
    model = None
    reason = "starting"


class ApiKeyMiddleware:
    """401 without a known key, 403 without the route's scope, 503 (with the reason) when no model is loaded.

    BentoML turns its own 401/403/5xx errors into fixed texts; answering here keeps the reasons.
    """

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        needed = ROUTE_SCOPES.get(scope.get("path", "")) if scope["type"] == "http" else None
        if needed is None:
            return await self.app(scope, receive, send)
        from starlette.responses import JSONResponse

        from serving.auth import authenticate

        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        bearer = headers.get("authorization", "")
        presented = bearer[7:].strip() if bearer.lower().startswith("bearer ") else headers.get("x-api-key")
        key = authenticate(State.keys, presented)
        if key is None:
            response = JSONResponse(
                {"error": "missing or unknown API key: send `Authorization: Bearer <key>`"},
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        elif needed not in key.scopes:
            response = JSONResponse({"error": f"API key {key.name!r} lacks the {needed!r} scope"}, status_code=403)
        elif needed == "predict" and State.model is None:
            response = JSONResponse({"error": f"no model is being served: {State.reason}"}, status_code=503)
        else:
            scope.setdefault("state", {})["caller"] = key.name
            return await self.app(scope, receive, send)
        await response(scope, receive, send)


@bentoml.service(name="flight_delay", traffic={"timeout": 30, "max_concurrency": 32})
class FlightDelay:
    def __init__(self) -> None:
        from pipelines.settings import get_settings

        self.settings = get_settings()
        self._lock = threading.Lock()
        self.model = self.features = None
        self._load()

    def _load(self) -> None:
        """(Re)load keys, features and the champion; on any failure keep serving what was loaded, or stay not-ready."""
        from pipelines.errors import PlatformError
        from pipelines.security.audit import audit_ledger
        from pipelines.security.secrets import PII_SALT_VARIABLE, variable
        from pipelines.security.store import artifact_store
        from pipelines.security.vault import Vault
        from serving.auth import load_keys
        from serving.model import OnlineFeatures, load_model
        from serving.schema import load_known_codes

        try:
            vault = Vault.from_settings(self.settings)
            ledger = audit_ledger(self.settings)
            keys = load_keys(vault)
            load_known_codes()
            features = OnlineFeatures(self.settings, variable(vault, PII_SALT_VARIABLE))
            model = load_model(self.settings, artifact_store(self.settings, ledger), vault, ledger)
        except PlatformError as exc:
            State.reason = f"{type(exc).__name__}: {exc}"
            return
        with self._lock:
            self.features, self.model = features, model
            State.keys, State.model, State.reason = keys, model, "ready"
        ledger.append("deployment.loaded", f"{model.name}/v{model.version}", {"variant": VARIANT}, actor="serving")

    def __is_ready__(self) -> bool:
        return self.model is not None

    def _status(self) -> dict:
        model = self.model
        return {
            "ready": model is not None,
            "reason": State.reason,
            "model": {"name": model.name, "version": model.version} if model else None,
        }

    @bentoml.api(route="/status")
    def status(self) -> dict:
        """Readiness with its reason, and the model being served (no key needed; nothing secret)."""
        return self._status()

    @bentoml.api(route="/predict")
    def predict(
        self, flights: Annotated[list[FlightRequest], Field(min_length=1, max_length=MAX_BATCH)], ctx: bentoml.Context
    ) -> PredictResponse:
        """Probability that each flight arrives more than 15 minutes late, with the decision and the model."""
        from serving import predictions

        caller = ctx.request.scope.get("state", {}).get("caller", "?")  # set by ApiKeyMiddleware
        model, features = self.model, self.features
        started = time.perf_counter()
        x = features.matrix(flights, model.features)
        probabilities = model.predict(x)
        latency_ms = (time.perf_counter() - started) * 1000
        request_id = uuid.uuid4().hex
        out = [
            Prediction(
                flight_id=f.flight_id,
                probability=float(p),
                late=bool(p >= model.threshold),
                model_version=model.version,
                variant=VARIANT,
            )
            for f, p in zip(flights, probabilities, strict=True)
        ]
        predictions.write(
            self.settings,
            request_id,
            [
                {
                    "flight_id": f.flight_id,
                    "carrier": f.carrier,
                    "origin": f.origin,
                    "destination": f.destination,
                    "scheduled_departure": f.scheduled_departure.replace(tzinfo=None),
                    "variant": VARIANT,
                    "model_version": model.version,
                    "probability": float(p),
                    "late": bool(p >= model.threshold),
                    "latency_ms": latency_ms,
                    "caller": caller,
                    **dict(zip(model.features, map(float, row), strict=True)),
                }
                for f, p, row in zip(flights, probabilities, x, strict=True)
            ],
        )
        return PredictResponse(request_id=request_id, predictions=out)

    @bentoml.api(route="/admin/reload")
    def reload(self) -> dict:
        """Reload API keys and the champion (admin scope); requests in flight finish on the old model."""
        self._load()
        return self._status()


FlightDelay.add_asgi_middleware(ApiKeyMiddleware)
