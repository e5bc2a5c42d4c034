"""The model service: one BentoML deployment serving the platform's use cases side by side.

Run with `bentoml serve serving.service:ModelService` (add `--ssl-certfile/--ssl-keyfile` for HTTPS).
Every use case in PLATFORM_SERVED_USECASES (default: every spec under usecases/) answers at its
spec's `serving.route` (flights: `POST /predict`, bikes: `POST /bike_rentals/predict`), with the
request schema its spec declares, its own deployment plan (champion, canary, shadow), its own
prediction log, and keys that may be limited to it (scope `predict:<use case>`; `predict` reaches
every one). `/admin/reload` reloads keys and plans; `/status` says, per use case, what is served or
why not. It reaches Vault as the `serving` AppRole (PLATFORM_VAULT_ADDR, _ROLE_ID, _SECRET_ID). A use
case is served only once its champion's manifest verified, its ONNX file decrypted and its feature
contract held; the service is ready once one use case is, and a use case without a model answers
503 with the reason.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
import uuid
from dataclasses import dataclass

import bentoml

from pipelines.settings import get_settings
from pipelines.usecases.spec import UseCase, available, resolve_usecase
from serving.auth import KeyRing
from serving.metrics import observe_request
from serving.schema import MAX_BATCH, prediction_model, request_model, response_model

# 1,000 items of the largest legal request are about 250 KiB of JSON.
MAX_BODY_BYTES = 512 * 1024
MAX_DISCARD_BYTES = 64 * 1024 * 1024  # a refused body is read to its end up to this, so its 413 arrives


def served_usecases() -> list[UseCase]:
    """The use cases this process serves, as the settings resolve their specs."""
    settings = get_settings()
    return [resolve_usecase(settings, name) for name in settings.served_usecases or available(settings.usecases_dir)]


SERVED = {usecase.name: usecase for usecase in served_usecases()}
# Which scope each protected route needs, and for which use case; everything else (docs, /status,
# probes) is open.
ROUTES = {usecase.serving.route: ("predict", name) for name, usecase in SERVED.items()}
ROUTES["/admin/reload"] = ("admin", None)


@dataclass
class Endpoint:
    """What one use case answers with, swapped whole on reload."""

    usecase: UseCase
    routing: object  # serving.model.Routing
    features: object  # serving.model.OnlineFeatures
    log: object  # serving.predictions.ParquetLog | PostgresLog
    objections: object  # serving.objections.Objections: subjects answered human_review, never scored


class State:
    """What the service instance has loaded, shared with the auth middleware of the same process."""

    keyring: KeyRing = KeyRing(dict)  # replaced when the service loads
    endpoints: dict[str, Endpoint] = {}
    reasons: dict[str, str] = dict.fromkeys(SERVED, "starting")


async def _discard_body(receive, length: int) -> None:
    """Read a refused body to its end, up to MAX_DISCARD_BYTES, before answering: a server that answers and
    closes while the client is still sending resets the connection, and the client sees that instead of
    the 413 (a probe's 10 MB body did). Beyond the bound the connection is closed after the answer."""
    left = min(length, MAX_DISCARD_BYTES)
    while left > 0:
        message = await receive()
        if message["type"] != "http.request":
            return
        left -= len(message.get("body", b""))
        if not message.get("more_body", False):
            return


class ApiKeyMiddleware:
    """401 without a known key, 403 without the route's scope, 413 for an oversized body, 503 (with the
    reason) when the use case has no model loaded.

    BentoML turns its own 401/403/5xx errors into fixed texts; answering here keeps the reasons.
    """

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        needed, name = ROUTES.get(scope.get("path", ""), (None, None)) if scope["type"] == "http" else (None, None)
        if needed is None:
            return await self.app(scope, receive, send)
        if name is None:
            return await self._guard(scope, receive, send, needed, name)
        started, answered = time.perf_counter(), {}

        async def sending(message) -> None:  # the status code the request got, for its metrics
            if message["type"] == "http.response.start":
                answered["code"] = message["status"]
            await send(message)

        try:
            await self._guard(scope, receive, sending, needed, name)
        finally:
            observe_request(name, answered.get("code", 500), time.perf_counter() - started)

    async def _guard(self, scope, receive, send, needed: str, name: str | None) -> None:
        from starlette.responses import JSONResponse

        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        length = headers.get("content-length", "")
        if needed == "predict" and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
            message = (
                f"request body of {length} bytes exceeds the {MAX_BODY_BYTES // 1024} KiB limit; send at most "
                f"{MAX_BATCH} {SERVED[name].serving.batch} per request"
                if length.isdigit()
                else "send a Content-Length header"
            )
            if length.isdigit():
                await _discard_body(receive, int(length))
            return await JSONResponse({"error": message}, status_code=413 if length.isdigit() else 411)(
                scope, receive, send
            )
        bearer = headers.get("authorization", "")
        presented = bearer[7:].strip() if bearer.lower().startswith("bearer ") else headers.get("x-api-key")
        ring = State.keyring
        key = ring.cached(presented)
        if key is None or ring.stale:  # a key created or revoked since the last read: Vault, off the event loop
            from starlette.concurrency import run_in_threadpool

            key = await run_in_threadpool(ring.authenticate, presented)
        wanted = needed if name is None else f"predict:{name}"
        if key is None:
            response = JSONResponse(
                {"error": "missing or unknown API key: send `Authorization: Bearer <key>`"},
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        elif needed not in key.scopes and wanted not in key.scopes:
            response = JSONResponse({"error": f"API key {key.name!r} lacks the {wanted!r} scope"}, status_code=403)
        elif name is not None and name not in State.endpoints:
            response = JSONResponse(
                {"error": f"no {name} model is being served: {State.reasons.get(name)}"}, status_code=503
            )
        else:
            scope.setdefault("state", {})["caller"] = key.name
            return await self.app(scope, receive, send)
        await response(scope, receive, send)


class _Service:
    def __init__(self) -> None:
        self.settings = get_settings()
        self._lock = threading.Lock()
        self.endpoints: dict[str, Endpoint] = {}
        State.keyring = KeyRing(self._read_keys, max_age_s=self.settings.api_key_max_age_s)
        self._load()

    def _read_keys(self) -> dict:
        from pipelines.security.vault import Vault
        from serving.auth import load_keys

        return load_keys(Vault.from_settings(self.settings))

    def _load(self) -> None:
        """(Re)load keys and every use case's features, deployment plan and models. A use case that fails
        keeps what it had loaded (or stays unserved, with the reason); the others are not held back.

        Each use case's new routing is built completely before it replaces the old one: requests in flight
        finish on the models they started with, and none is dropped.
        """
        from pipelines.errors import PlatformError
        from pipelines.security.audit import audit_ledger
        from pipelines.security.secrets import PII_SALT_VARIABLE, variable
        from pipelines.security.store import artifact_store
        from pipelines.security.vault import Vault
        from serving.auth import load_keys
        from serving.metrics import observe_plan
        from serving.model import OnlineFeatures, load_routing
        from serving.objections import Objections
        from serving.predictions import prediction_log

        try:
            vault = Vault.from_settings(self.settings)
            ledger = audit_ledger(self.settings)
            keys = load_keys(vault)
            salt = variable(vault, PII_SALT_VARIABLE)
            store = artifact_store(self.settings, ledger)
        except PlatformError as exc:
            State.reasons = dict.fromkeys(SERVED, f"{type(exc).__name__}: {exc}")
            _report_loads(self.settings, {name: exc for name in SERVED})
            return
        loaded, reasons, failures = {}, {}, {}
        for name, usecase in SERVED.items():
            try:
                loaded[name] = Endpoint(
                    usecase,
                    load_routing(self.settings, usecase, store, vault, ledger),
                    OnlineFeatures(self.settings, usecase, salt),
                    prediction_log(self.settings, usecase),
                    Objections(
                        functools.partial(_objections, self.settings, usecase.name),
                        max_age_s=self.settings.api_key_max_age_s,
                    ),  # fmt: skip
                )
                reasons[name] = "ready"
            except Exception as exc:  # noqa: BLE001 (Feast raises its own types for a service it does not know)
                failures[name] = exc
                reasons[name] = f"{type(exc).__name__}: {exc if isinstance(exc, PlatformError) else str(exc)[:300]}"
        _report_loads(self.settings, {name: failures.get(name) for name in SERVED})
        with self._lock:
            self.endpoints = {**{n: e for n, e in self.endpoints.items() if n not in loaded}, **loaded}
            State.endpoints, State.reasons = self.endpoints, reasons
            State.keyring.replace(keys)
        for name, endpoint in loaded.items():
            plan = endpoint.routing.plan
            observe_plan(name, plan)
            ledger.append(
                "deployment.loaded",
                name,
                {
                    "variants": [[v.name, v.version, v.weight] for v in plan.variants],
                    "shadow": [plan.shadow.name, plan.shadow.version] if plan.shadow else None,
                },
                actor="serving",
            )

    def __is_ready__(self) -> bool:
        return bool(self.endpoints)

    def _status(self) -> dict:
        usecases = {}
        for name, usecase in SERVED.items():
            endpoint = self.endpoints.get(name)
            plan = endpoint.routing.plan if endpoint else None
            usecases[name] = {
                "ready": endpoint is not None,
                "reason": State.reasons.get(name, "starting"),
                "route": usecase.serving.route,
                "variants": [{"name": v.name, "version": v.version, "weight": v.weight} for v in plan.variants]
                if plan
                else [],
                "shadow": {"name": plan.shadow.name, "version": plan.shadow.version} if plan and plan.shadow else None,
            }
        return {"ready": bool(self.endpoints), "usecases": usecases}

    def __metrics__(self, content: str) -> str:
        """BentoML's metrics, then the platform's (serving/metrics.py)."""
        from serving.metrics import exposition

        return content + exposition()

    @bentoml.api(route="/status")
    def status(self) -> dict:
        """Readiness per use case with its reason, and the variants each serves (no key needed; nothing secret)."""
        return self._status()

    @bentoml.api(route="/admin/reload")
    def reload(self) -> dict:
        """Reload API keys and every use case's plan and models (admin scope); requests in flight finish on
        the old ones."""
        self._load()
        return self._status()

    def answer(self, name: str, items: list, ctx: bentoml.Context):
        """Each item's answer from the variant its id is assigned to (sticky); a shadow variant scores every
        item too, and its answers are logged, never returned. The items of a subject who objects to automated
        decisions are not scored at all: answered (and logged) `human_review`."""
        from serving import metrics
        from serving.model import score

        endpoint = self.endpoints[name]  # one snapshot for the whole request
        usecase, routing = endpoint.usecase, endpoint.routing
        caller = ctx.request.scope.get("state", {}).get("caller", "?")  # set by ApiKeyMiddleware
        started = time.perf_counter()
        items = [item.model_dump() for item in items]
        reviewed = _objecting(endpoint, items)
        which = [i for i in range(len(items)) if i not in reviewed]  # the items a model scores
        scored_items = [items[i] for i in which]
        entity_id = usecase.features.entity_id
        reference = next(iter(routing.models.values()))
        request = {"request_id": uuid.uuid4().hex, "caller": caller, "features": reference.features}
        out, logged = [None] * len(items), []
        if scored_items:
            looked_up = time.perf_counter()
            x = endpoint.features.matrix(scored_items, reference.features)
            metrics.LOOKUP_SECONDS.labels(name).observe(time.perf_counter() - looked_up)
            assigned = [routing.plan.assign(str(item[entity_id])) for item in scored_items]
            scored = score(routing, x, assigned, usecase.task)
            _observe_scoring(name, assigned, scored)
            request["latency_ms"] = (time.perf_counter() - started) * 1000
            for j, item in enumerate(scored_items):
                model = routing.models[scored.answered[j].version]
                answer = _answer(usecase, item, float(scored.prediction[j]), model, scored.answered[j].name)
                out[which[j]] = answer
                logged.append(_log_row(usecase, item, answer, assigned[j].name, scored.error[j],
                                       scored.score_ms[j], x[j], request))  # fmt: skip
            if routing.plan.shadow is not None:
                logged += _shadow_rows(usecase, routing, scored_items, x, request)
        request.setdefault("latency_ms", (time.perf_counter() - started) * 1000)
        for i in sorted(reviewed):
            out[i] = _human_review(usecase, items[i])
            logged.append(_log_row(usecase, items[i], out[i], HUMAN_REVIEW, "", 0.0, [], {**request, "features": []}))
        endpoint.log.write(request["request_id"], logged)
        return response_model(usecase).model_validate({"request_id": request["request_id"], "predictions": out})


def _predict_api(usecase: UseCase):
    """`POST <serving.route>` of one use case: its request schema in, its answers out."""
    batch = usecase.serving.batch
    noun = "probability of the positive class and the decision" if usecase.task == "binary_classification" else (
        f"predicted {usecase.features.label.column}")  # fmt: skip

    def predict(self, ctx: bentoml.Context, **body):
        return self.answer(usecase.name, body[batch], ctx)

    predict.__name__ = f"predict_{usecase.name}"
    predict.__doc__ = (
        f"{usecase.title}: the {noun} for each of the {batch} (at most {MAX_BATCH}).\n\n{usecase.description}"
    )
    return bentoml.api(route=usecase.serving.route, input_spec=request_model(usecase),
                       output_spec=response_model(usecase))(predict)  # fmt: skip


ModelService = bentoml.service(name="model_service", traffic={"timeout": 30, "max_concurrency": 32})(
    type("ModelService", (_Service,), {f"predict_{name}": _predict_api(u) for name, u in SERVED.items()})
)
ModelService.add_asgi_middleware(ApiKeyMiddleware)


def _report_loads(settings, outcomes: dict) -> None:
    """Each use case's (re)load as incidents: a failure opens (or repeats) `load:<use case>`, unless nothing was
    trained yet; a success clears it."""
    import datetime as dt

    from pipelines.alerting.incidents import Incidents, platform_event
    from serving.model import NoModelYet

    cleared = [name for name, failure in outcomes.items() if failure is None]
    for name, failure in outcomes.items():
        if failure is not None and not isinstance(failure, NoModelYet):
            platform_event(
                settings,
                "ModelUnloadable",
                f"load:{name}",
                name,
                f"the model service cannot serve {name}: {type(failure).__name__}: {str(failure)[:600]}",
            )
    if cleared:
        try:
            incidents = Incidents(settings)
            for name in cleared:
                incidents.cleared(f"load:{name}", dt.datetime.now(dt.UTC))
        except Exception:  # noqa: BLE001 (serving goes on; the incident stays open for a person)
            logging.getLogger(__name__).exception("could not clear the load incidents of %s", cleared)


def _observe_scoring(name: str, assigned: list, scored) -> None:
    """Each variant's scoring time and the items it answered; an item whose variant failed counts as a failure
    (the champion answered it)."""
    from collections import Counter

    from serving import metrics

    first = {a.name: i for i, a in reversed(list(enumerate(assigned)))}
    for variant, i in first.items():
        metrics.SCORING_SECONDS.labels(name, variant).observe(scored.score_ms[i] / 1000)
    for variant, count in Counter(a.name for a in scored.answered).items():
        metrics.ITEMS.labels(name, variant).inc(count)
    failed = sum(1 for error in scored.error if error)
    if failed:
        metrics.ERRORS.labels(name, "variant_failure").inc(failed)


def _answer(usecase: UseCase, item: dict, value: float, model, variant: str) -> dict:
    """One answer as the use case's response schema has it."""
    answer = {usecase.features.entity_id: str(item[usecase.features.entity_id]), usecase.prediction_column: value}
    if usecase.serving.decision:
        answer[usecase.serving.decision] = bool(value >= model.threshold)
    answer.update(model_version=model.version, variant=variant, decision="model")
    return prediction_model(usecase).model_construct(**answer).model_dump()


HUMAN_REVIEW = "human_review"


def _human_review(usecase: UseCase, item: dict) -> dict:
    """The answer to an objecting subject's item: no score, no model; a person decides."""
    answer = {usecase.features.entity_id: str(item[usecase.features.entity_id]), usecase.prediction_column: None,
              "model_version": None, "variant": HUMAN_REVIEW, "decision": HUMAN_REVIEW}  # fmt: skip
    if usecase.serving.decision:
        answer[usecase.serving.decision] = None
    return prediction_model(usecase).model_construct(**answer).model_dump()


def _objecting(endpoint: Endpoint, items: list[dict]) -> set[int]:
    """The items of subjects who object to automated decisions (their identifier hashed as stored)."""
    from pipelines.features.pii import hash_pii

    subject = endpoint.usecase.subject
    if subject is None or subject.request_field is None:
        return set()
    objecting = endpoint.objections.current()
    if not objecting:
        return set()
    salt, field = endpoint.features.salt, subject.request_field
    return {i for i, item in enumerate(items) if item.get(field) and hash_pii(str(item[field]), salt) in objecting}


def _objections(settings, usecase: str) -> set[str]:
    from pipelines.governance.subjects import registered

    return registered(settings, usecase, "objections")


def _shadow_rows(usecase: UseCase, routing, items: list[dict], x, request: dict) -> list[dict]:
    """The shadow's answers, for the log only; a failing shadow is logged as failing and costs the consumer nothing."""
    from serving.model import score_shadow

    shadow = routing.plan.shadow
    model = routing.models[shadow.version]
    p, error, elapsed = score_shadow(routing, x, usecase.task)
    rows = []
    for item, value, values in zip(items, p, x, strict=True):
        answer = _answer(usecase, item, float(value), model, f"shadow:{shadow.name}")
        rows.append(_log_row(usecase, item, answer, answer["variant"], error, elapsed, values, request))
    return rows


def _log_row(
    usecase: UseCase, item: dict, answer: dict, assigned: str, error: str, score_ms: float, x, request: dict
) -> dict:
    """One logged prediction: the item's fields (personal data left out), what answered it and how, and the
    features it was scored on. `assigned_variant` is the variant the item belongs to; `variant` the one that
    answered (they differ when the assigned one failed and the champion stood in; `error` says why)."""
    from serving.predictions import logged_fields

    fields = {name: item[name] for name in logged_fields(usecase)}
    fields[usecase.serving.time] = item[usecase.serving.time].replace(tzinfo=None)
    return {
        **fields,
        **answer,
        usecase.features.entity_id: str(item[usecase.features.entity_id]),
        "assigned_variant": assigned,
        "error": error,
        "score_ms": score_ms,
        "latency_ms": request["latency_ms"],
        "caller": request["caller"],
        **dict(zip(request["features"], map(float, x), strict=True)),
    }
