"""A use case's served models: loaded only after their manifests' signatures and file hashes verify,
their ONNX files decrypt under the serving identity, and their features mean what the online store's
features mean; and its online features, read for a request's items."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pipelines.deploy.plan import DeploymentPlan, Variant, read_plan
from pipelines.errors import PlatformError
from pipelines.export.onnx import OnnxScorer
from pipelines.features.pii import hash_pii
from pipelines.features.request_time import prediction_time, time_features
from pipelines.features.store import feature_store
from pipelines.registry.registry import Registry
from pipelines.security.audit import AuditLedger
from pipelines.security.store import ArtifactStore
from pipelines.security.vault import Vault
from pipelines.settings import Settings
from pipelines.training.dataset import feature_definitions_hash
from pipelines.usecases.spec import UseCase


class ModelUnavailable(PlatformError):
    """No model can be served; the message says why (readiness reports it)."""


class NoModelYet(ModelUnavailable):
    """The use case has no model under the alias yet: nothing is broken, nothing was trained."""


@dataclass
class ServedModel:
    name: str
    version: int
    family: str  # xgboost | mlp: which native runtime it also has (the compute planner may choose it)
    features: list[str]
    threshold: float | None  # a classifier's decision threshold; None for a regressor
    scorer: OnnxScorer
    onnx: bytes = field(repr=False, default=b"")  # the verified graph, for sessions on more threads
    output: dict = field(default_factory=dict)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.scorer.predict(x)

    def scorer_with(self, threads: int) -> OnnxScorer:
        """The same verified graph in a session of `threads` intra-op threads (the one-thread one for 1)."""
        return self.scorer if threads == 1 else OnnxScorer(self.onnx, self.output, threads=threads)


def load_model(
    settings: Settings,
    usecase: UseCase,
    store: ArtifactStore,
    vault: Vault,
    ledger: AuditLedger,
    alias: str = "champion",
    version: int | None = None,
) -> ServedModel:
    """A version (or the version an alias points at), verified, decrypted and checked against the features."""
    registry = Registry(store, vault, ledger)
    name = usecase.name
    if version is None:
        pointer = registry.alias(name, alias)
        if pointer is None:
            raise NoModelYet(f"{name} has no {alias} yet: train one (its training DAG, or `make run`)")
        version = pointer["version"]
    manifest, files = registry.load_files(name, version, ["model.onnx"])  # signature, decrypt, hashes
    contract = manifest["lineage"]["feature_service"]
    current = feature_definitions_hash(settings, usecase)
    if contract["definitions_sha256"] != current:
        raise ModelUnavailable(
            f"{name} v{version} was trained on FeatureService {contract['name']} with definitions "
            f"{contract['definitions_sha256'][:12]}…, but the online store now defines it as {current[:12]}…; "
            "refusing to serve it. Retrain on the current features or restore the definitions it was trained on."
        )
    io = manifest["onnx_io"]
    try:
        scorer = OnnxScorer(files["model.onnx"], io["output"])
    except Exception as exc:  # noqa: BLE001 (ONNX Runtime raises its own types for models it cannot run)
        raise ModelUnavailable(f"ONNX Runtime cannot load {name} v{version}: {str(exc)[-300:]}") from exc
    threshold = None if manifest.get("threshold") is None else float(manifest["threshold"])
    return ServedModel(name, version, manifest["family"], io["features"], threshold, scorer, files["model.onnx"],
                       io["output"])  # fmt: skip


class OnlineFeatures:
    """A use case's stored features from the Feast online store plus its request-time features, in a
    model's input order: the join keys, the time and the inputs come from each item as the spec's
    `serving` and `features` sections say."""

    def __init__(self, settings: Settings, usecase: UseCase, salt: str) -> None:
        self.usecase = usecase
        self.store = feature_store(settings)
        self.service = self.store.get_feature_service(usecase.features.feature_service)
        self.salt = salt
        # Each stored feature's time to live (its view's ttl), as training's point-in-time join applies it.
        views = [(p, self.store.get_feature_view(p.name)) for p in self.service.feature_view_projections]
        self.ttl = {feature.name: view.ttl for projection, view in views for feature in projection.features}

    def matrix(self, items: list[dict], features: list[str]) -> np.ndarray:
        """`items`: the request's items as dicts of their fields."""
        import pandas as pd

        serving, spec = self.usecase.serving, self.usecase.features
        rows = [{key: serving.key_of(key, item, self._hash) for key in spec.join_keys} for item in items]
        stored = self.store.get_online_features(features=self.service, entity_rows=rows).to_dict(
            include_event_timestamps=True
        )
        local = pd.Series([item[serving.time].replace(tzinfo=None) for item in items])
        frame = pd.DataFrame({k: v for k, v in stored.items() if k in features})
        self._expire(frame, stored, local)
        frame = frame.join(time_features(local, spec.request_time.prefix))
        for name in spec.request_inputs:
            frame[name] = [item[name] for item in items]
        return frame.reindex(columns=features).to_numpy(dtype=np.float32, na_value=np.nan)

    def _expire(self, frame, stored: dict, local) -> None:
        """Blank each value older than its view's ttl at the item's prediction time, as the training join does:
        the online store keeps a view's last value however old (the evening's last departures, read the next
        morning before any flight has left), where training finds nothing that old."""
        import pandas as pd

        instants = prediction_time(self.usecase.prediction, local.dt.normalize(), local, self.usecase.tz)
        for name in frame.columns:
            ttl = self.ttl.get(name)
            if not ttl or f"{name}__ts" not in stored:
                continue
            written = pd.to_datetime(pd.Series(stored[f"{name}__ts"], dtype="float64"), unit="s", utc=True)
            frame.loc[(written < instants - ttl).to_numpy(), name] = np.nan

    def _hash(self, value: str) -> str:
        return hash_pii(value, self.salt)


@dataclass
class Routing:
    """The deployment plan with its loaded models: what the service answers with, swapped whole on reload."""

    plan: DeploymentPlan
    models: dict[int, ServedModel]


@dataclass
class Scored:
    """Each item's prediction (probability or value), the variant that answered it, why its own variant did
    not (or ""), and how long its variant's call took."""

    prediction: np.ndarray
    answered: list[Variant]
    error: list[str]
    score_ms: list[float]


def score(routing: Routing, x: np.ndarray, assigned: list[Variant], task: str) -> Scored:
    """Score each item with its assigned variant; a variant that fails or answers what no `task` model may
    (outside [0, 1] for a probability, not finite) is replaced by the plan's fallback (the champion) for its
    items, and the failure is recorded: the consumer gets an answer and the canary sees the error rate."""
    import time

    n = len(assigned)
    scored = Scored(np.empty(n), list(assigned), [""] * n, [0.0] * n)
    fallback = routing.plan.fallback
    for variant in {a.name: a for a in assigned}.values():
        rows = [i for i, a in enumerate(assigned) if a.name == variant.name]
        started = time.perf_counter()
        try:
            p = checked_predictions(routing.models[variant.version].predict(x[rows]), len(rows), task)
        except Exception as exc:  # noqa: BLE001 (any failure of one variant falls back; it is recorded)
            if variant.name == fallback.name:
                raise ModelUnavailable(f"the fallback {fallback.name} v{fallback.version} failed: {exc}") from exc
            p = checked_predictions(routing.models[fallback.version].predict(x[rows]), len(rows), task)
            for i in rows:
                scored.answered[i], scored.error[i] = fallback, f"{type(exc).__name__}: {exc}"[:500]
        elapsed = (time.perf_counter() - started) * 1000
        scored.prediction[rows] = p
        for i in rows:
            scored.score_ms[i] = elapsed
    return scored


def score_shadow(routing: Routing, x: np.ndarray, task: str) -> tuple[np.ndarray, str, float]:
    """The shadow's predictions (NaN when it failed), the failure ("" if none) and the call's milliseconds;
    a failing shadow costs the consumer nothing."""
    import time

    started = time.perf_counter()
    try:
        p, error = checked_predictions(routing.models[routing.plan.shadow.version].predict(x), len(x), task), ""
    except Exception as exc:  # noqa: BLE001 (never let the shadow fail a request)
        p, error = np.full(len(x), np.nan), f"{type(exc).__name__}: {exc}"[:500]
    return p, error, (time.perf_counter() - started) * 1000


def checked_predictions(p: np.ndarray, rows: int, task: str) -> np.ndarray:
    p = np.asarray(p, dtype=np.float64).reshape(-1)
    if p.shape != (rows,):
        raise ModelUnavailable(f"the model answered {p.shape[0]} predictions for {rows} items")
    if task == "binary_classification":
        bad = ~np.isfinite(p) | (p < 0) | (p > 1)
        if bad.any():
            raise ModelUnavailable(
                f"the model answered {int(bad.sum())} probabilities outside [0, 1] (e.g. {p[bad][0]})"
            )
    elif not np.isfinite(p).all():
        raise ModelUnavailable(f"the model answered {int((~np.isfinite(p)).sum())} predictions that are not numbers")
    return p


def load_routing(
    settings: Settings, usecase: UseCase, store: ArtifactStore, vault: Vault, ledger: AuditLedger
) -> Routing:
    """The use case's plan in the registry (or all traffic to the champion when there is none), every model
    in it loaded."""
    registry = Registry(store, vault, ledger)
    plan, _ = read_plan(registry, usecase.name)
    if plan is None:
        champion = load_model(settings, usecase, store, vault, ledger)
        return Routing(DeploymentPlan([Variant("champion", champion.version, 100.0)]), {champion.version: champion})
    models = {v: load_model(settings, usecase, store, vault, ledger, version=v) for v in sorted(plan.versions())}
    return Routing(plan, models)
