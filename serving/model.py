"""The served model: loaded only after its manifest's signature and file hashes verify, its ONNX file
decrypts under the serving identity, and its features mean what the online store's features mean."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipelines.deploy.plan import DeploymentPlan, Variant, read_plan
from pipelines.errors import PlatformError
from pipelines.export.onnx import OnnxScorer
from pipelines.features.pii import hash_pii
from pipelines.features.request_time import time_features
from pipelines.features.store import feature_store
from pipelines.registry.registry import Registry
from pipelines.security.audit import AuditLedger
from pipelines.security.store import ArtifactStore
from pipelines.security.vault import Vault
from pipelines.settings import Settings
from pipelines.training.dataset import feature_definitions_hash
from pipelines.usecases.spec import resolve_usecase
from serving.schema import FlightRequest

# The use case this service serves (usecases/flight_delay/usecase.yaml); one service per use case.
MODEL_NAME = "flight_delay"


class ModelUnavailable(PlatformError):
    """No model can be served; the message says why (readiness reports it)."""


@dataclass
class ServedModel:
    name: str
    version: int
    features: list[str]
    threshold: float
    scorer: OnnxScorer

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.scorer.predict(x)


def load_model(
    settings: Settings,
    store: ArtifactStore,
    vault: Vault,
    ledger: AuditLedger,
    alias: str = "champion",
    version: int | None = None,
) -> ServedModel:
    """A version (or the version an alias points at), verified, decrypted and checked against the features."""
    registry = Registry(store, vault, ledger)
    if version is None:
        pointer = registry.alias(MODEL_NAME, alias)
        if pointer is None:
            raise ModelUnavailable(f"{MODEL_NAME} has no {alias} yet: train one (the training DAG, or `make run`)")
        version = pointer["version"]
    manifest, files = registry.load_files(MODEL_NAME, version, ["model.onnx"])  # signature, decrypt, hashes
    contract = manifest["lineage"]["feature_service"]
    current = feature_definitions_hash(settings, resolve_usecase(settings, MODEL_NAME))
    if contract["definitions_sha256"] != current:
        raise ModelUnavailable(
            f"{MODEL_NAME} v{version} was trained on FeatureService {contract['name']} with definitions "
            f"{contract['definitions_sha256'][:12]}…, but the online store now defines it as {current[:12]}…; "
            "refusing to serve it. Retrain on the current features or restore the definitions it was trained on."
        )
    io = manifest["onnx_io"]
    try:
        scorer = OnnxScorer(files["model.onnx"], io["output"])
    except Exception as exc:  # noqa: BLE001 (ONNX Runtime raises its own types for models it cannot run)
        raise ModelUnavailable(f"ONNX Runtime cannot load {MODEL_NAME} v{version}: {str(exc)[-300:]}") from exc
    return ServedModel(MODEL_NAME, version, io["features"], float(manifest["threshold"]), scorer)


class OnlineFeatures:
    """Stored features from the Feast online store plus request-time features, in a model's input order."""

    def __init__(self, settings: Settings, salt: str) -> None:
        self.usecase = resolve_usecase(settings, MODEL_NAME)
        self.store = feature_store(settings)
        self.service = self.store.get_feature_service(self.usecase.features.feature_service)
        self.salt = salt

    def matrix(self, flights: list[FlightRequest], features: list[str]) -> np.ndarray:
        import pandas as pd

        rows = [
            {
                "carrier": f.carrier,
                "route": f"{f.origin}-{f.destination}",
                "origin": f.origin,
                "tailnum_hash": hash_pii(f.tailnum, self.salt) if f.tailnum else "",
            }
            for f in flights
        ]
        stored = self.store.get_online_features(features=self.service, entity_rows=rows).to_dict()
        local = pd.Series([f.scheduled_departure.replace(tzinfo=None) for f in flights])
        request_time = time_features(local, self.usecase.features.request_time.prefix)
        frame = pd.DataFrame({k: v for k, v in stored.items() if k in features}).join(request_time)
        return frame.reindex(columns=features).to_numpy(dtype=np.float32, na_value=np.nan)


@dataclass
class Routing:
    """The deployment plan with its loaded models: what the service answers with, swapped whole on reload."""

    plan: DeploymentPlan
    models: dict[int, ServedModel]


@dataclass
class Scored:
    """Each flight's probability, the variant that answered it, why its own variant did not (or ""), and
    how long its variant's call took."""

    probability: np.ndarray
    answered: list[Variant]
    error: list[str]
    score_ms: list[float]


def score(routing: Routing, x: np.ndarray, assigned: list[Variant]) -> Scored:
    """Score each flight with its assigned variant; a variant that fails or answers outside [0, 1] is
    replaced by the plan's fallback (the champion) for its flights, and the failure is recorded: the
    consumer gets an answer and the canary sees the error rate."""
    import time

    n = len(assigned)
    scored = Scored(np.empty(n), list(assigned), [""] * n, [0.0] * n)
    fallback = routing.plan.fallback
    for variant in {a.name: a for a in assigned}.values():
        rows = [i for i, a in enumerate(assigned) if a.name == variant.name]
        started = time.perf_counter()
        try:
            p = checked_probabilities(routing.models[variant.version].predict(x[rows]), len(rows))
        except Exception as exc:  # noqa: BLE001 (any failure of one variant falls back; it is recorded)
            if variant.name == fallback.name:
                raise ModelUnavailable(f"the fallback {fallback.name} v{fallback.version} failed: {exc}") from exc
            p = checked_probabilities(routing.models[fallback.version].predict(x[rows]), len(rows))
            for i in rows:
                scored.answered[i], scored.error[i] = fallback, f"{type(exc).__name__}: {exc}"[:500]
        elapsed = (time.perf_counter() - started) * 1000
        scored.probability[rows] = p
        for i in rows:
            scored.score_ms[i] = elapsed
    return scored


def score_shadow(routing: Routing, x: np.ndarray) -> tuple[np.ndarray, str, float]:
    """The shadow's probabilities (NaN when it failed), the failure ("" if none) and the call's milliseconds;
    a failing shadow costs the consumer nothing."""
    import time

    started = time.perf_counter()
    try:
        p, error = checked_probabilities(routing.models[routing.plan.shadow.version].predict(x), len(x)), ""
    except Exception as exc:  # noqa: BLE001 (never let the shadow fail a request)
        p, error = np.full(len(x), np.nan), f"{type(exc).__name__}: {exc}"[:500]
    return p, error, (time.perf_counter() - started) * 1000


def checked_probabilities(p: np.ndarray, rows: int) -> np.ndarray:
    p = np.asarray(p, dtype=np.float64).reshape(-1)
    if p.shape != (rows,):
        raise ModelUnavailable(f"the model answered {p.shape[0]} probabilities for {rows} flights")
    bad = ~np.isfinite(p) | (p < 0) | (p > 1)
    if bad.any():
        raise ModelUnavailable(f"the model answered {int(bad.sum())} probabilities outside [0, 1] (e.g. {p[bad][0]})")
    return p


def load_routing(settings: Settings, store: ArtifactStore, vault: Vault, ledger: AuditLedger) -> Routing:
    """The plan in the registry (or all traffic to the champion when there is none), every model in it loaded."""
    registry = Registry(store, vault, ledger)
    plan, _ = read_plan(registry, MODEL_NAME)
    if plan is None:
        champion = load_model(settings, store, vault, ledger)
        return Routing(DeploymentPlan([Variant("champion", champion.version, 100.0)]), {champion.version: champion})
    models = {v: load_model(settings, store, vault, ledger, version=v) for v in sorted(plan.versions())}
    return Routing(plan, models)
