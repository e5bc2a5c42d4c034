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

# 1,000 flights of the largest legal request are about 250 KiB of JSON.
MAX_BODY_BYTES = 512 * 1024
# Which scope each protected route needs; everything else (docs, /status, probes) is open.
ROUTE_SCOPES = {"/predict": "predict", "/admin/reload": "admin"}


class State:
    """What the service instance has loaded, shared with the auth middleware of the same process."""

    keys: dict = {}
    routing = None
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
        length = headers.get("content-length", "")
        if needed == "predict" and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
            message = (
                f"request body of {length} bytes exceeds the {MAX_BODY_BYTES // 1024} KiB limit; send at most "
                f"{MAX_BATCH} flights per request"
                if length.isdigit()
                else "send a Content-Length header"
            )
            return await JSONResponse({"error": message}, status_code=413 if length.isdigit() else 411)(
                scope, receive, send
            )
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
        elif needed == "predict" and State.routing is None:
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
        self.routing = self.features = self.log = None
        self._load()

    def _load(self) -> None:
        """(Re)load keys, features and the deployment plan's models; on failure keep what was loaded, or stay not-ready.

        The new routing is built completely before it replaces the old one: requests in flight finish
        on the models they started with, and none is dropped.
        """
        from pipelines.errors import PlatformError
        from pipelines.security.audit import audit_ledger
        from pipelines.security.secrets import PII_SALT_VARIABLE, variable
        from pipelines.security.store import artifact_store
        from pipelines.security.vault import Vault
        from serving.auth import load_keys
        from serving.model import OnlineFeatures, load_routing
        from serving.predictions import prediction_log

        try:
            vault = Vault.from_settings(self.settings)
            ledger = audit_ledger(self.settings)
            keys = load_keys(vault)
            features = OnlineFeatures(self.settings, variable(vault, PII_SALT_VARIABLE))
            routing = load_routing(self.settings, artifact_store(self.settings, ledger), vault, ledger)
            log = prediction_log(self.settings)
        except PlatformError as exc:
            State.reason = f"{type(exc).__name__}: {exc}"
            return
        with self._lock:
            self.features, self.routing, self.log = features, routing, log
            State.keys, State.routing, State.reason = keys, routing, "ready"
        plan = routing.plan
        ledger.append(
            "deployment.loaded",
            "flight_delay",
            {
                "variants": [[v.name, v.version, v.weight] for v in plan.variants],
                "shadow": [plan.shadow.name, plan.shadow.version] if plan.shadow else None,
            },
            actor="serving",
        )

    def __is_ready__(self) -> bool:
        return self.routing is not None

    def _status(self) -> dict:
        routing = self.routing
        if routing is None:
            return {"ready": False, "reason": State.reason, "variants": [], "shadow": None}
        plan = routing.plan
        return {
            "ready": True,
            "reason": State.reason,
            "variants": [{"name": v.name, "version": v.version, "weight": v.weight} for v in plan.variants],
            "shadow": {"name": plan.shadow.name, "version": plan.shadow.version} if plan.shadow else None,
        }

    @bentoml.api(route="/status")
    def status(self) -> dict:
        """Readiness with its reason, and the variants being served (no key needed; nothing secret)."""
        return self._status()

    @bentoml.api(route="/predict")
    def predict(
        self, flights: Annotated[list[FlightRequest], Field(min_length=1, max_length=MAX_BATCH)], ctx: bentoml.Context
    ) -> PredictResponse:
        """Probability that each flight arrives more than 15 minutes late, with the decision, model and variant.

        Each flight goes to the variant its flight id is assigned to (sticky); a shadow variant scores
        every flight too, and its answers are logged, never returned.
        """
        from serving.model import score

        caller = ctx.request.scope.get("state", {}).get("caller", "?")  # set by ApiKeyMiddleware
        routing, features = self.routing, self.features  # one snapshot for the whole request
        started = time.perf_counter()
        reference = next(iter(routing.models.values()))
        x = features.matrix(flights, reference.features)
        assigned = [routing.plan.assign(f.flight_id) for f in flights]
        scored = score(routing, x, assigned)
        request = {
            "request_id": uuid.uuid4().hex,
            "latency_ms": (time.perf_counter() - started) * 1000,
            "caller": caller,
            "features": reference.features,
        }
        out, logged = [], []
        for i, flight in enumerate(flights):
            model = routing.models[scored.answered[i].version]
            p = float(scored.probability[i])
            prediction = Prediction(
                flight_id=flight.flight_id,
                probability=p,
                late=bool(p >= model.threshold),
                model_version=model.version,
                variant=scored.answered[i].name,
            )
            out.append(prediction)
            logged.append(
                _log_row(flight, prediction, assigned[i].name, scored.error[i], scored.score_ms[i], x[i], request)
            )
        if routing.plan.shadow is not None:
            logged += _shadow_rows(routing, flights, x, request)
        self.log.write(request["request_id"], logged)
        return PredictResponse(request_id=request["request_id"], predictions=out)

    @bentoml.api(route="/admin/reload")
    def reload(self) -> dict:
        """Reload API keys and the deployment plan's models (admin scope); requests in flight finish on the old ones."""
        self._load()
        return self._status()


FlightDelay.add_asgi_middleware(ApiKeyMiddleware)


def _shadow_rows(routing, flights: list[FlightRequest], x, request: dict) -> list[dict]:
    """The shadow's answers, for the log only; a failing shadow is logged as failing and costs the consumer nothing."""
    from serving.model import score_shadow

    shadow = routing.plan.shadow
    model = routing.models[shadow.version]
    p, error, elapsed = score_shadow(routing, x)
    rows = []
    for flight, probability, values in zip(flights, p, x, strict=True):
        shadowed = Prediction.model_construct(
            flight_id=flight.flight_id,
            probability=float(probability),
            late=bool(probability >= model.threshold),
            model_version=model.version,
            variant=f"shadow:{shadow.name}",
        )
        rows.append(_log_row(flight, shadowed, shadowed.variant, error, elapsed, values, request))
    return rows


def _log_row(
    flight: FlightRequest, prediction: Prediction, assigned: str, error: str, score_ms: float, x, request: dict
) -> dict:
    """One logged prediction: the request, what answered it and how, and the features it was scored on.
    `assigned_variant` is the variant the flight belongs to; `variant` the one that answered (they differ
    when the assigned one failed and the champion stood in; `error` says why)."""
    return {
        "flight_id": flight.flight_id,
        "carrier": flight.carrier,
        "origin": flight.origin,
        "destination": flight.destination,
        "scheduled_departure": flight.scheduled_departure.replace(tzinfo=None),
        "variant": prediction.variant,
        "model_version": prediction.model_version,
        "probability": prediction.probability,
        "late": prediction.late,
        "assigned_variant": assigned,
        "error": error,
        "score_ms": score_ms,
        "latency_ms": request["latency_ms"],
        "caller": request["caller"],
        **dict(zip(request["features"], map(float, x), strict=True)),
    }
