"""The served model: loaded only after its manifest's signature and file hashes verify, its ONNX file
decrypts under the serving identity, and its features mean what the online store's features mean."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipelines.deploy.plan import DeploymentPlan, Variant, read_plan
from pipelines.errors import PlatformError
from pipelines.export.onnx import OnnxScorer
from pipelines.features.pii import hash_pii
from pipelines.features.request_time import schedule_features
from pipelines.features.store import FEATURE_SERVICE, feature_store
from pipelines.orchestration.training import MODEL_NAME
from pipelines.registry.registry import Registry
from pipelines.security.audit import AuditLedger
from pipelines.security.store import ArtifactStore
from pipelines.security.vault import Vault
from pipelines.settings import Settings
from pipelines.training.dataset import feature_definitions_hash
from serving.schema import FlightRequest


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
    current = feature_definitions_hash(settings, contract["name"])
    if contract["definitions_sha256"] != current:
        raise ModelUnavailable(
            f"{MODEL_NAME} v{version} was trained on FeatureService {contract['name']} with definitions "
            f"{contract['definitions_sha256'][:12]}…, but the online store now defines it as {current[:12]}…; "
            "refusing to serve it. Retrain on the current features or restore the definitions it was trained on."
        )
    io = manifest["onnx_io"]
    return ServedModel(
        MODEL_NAME, version, io["features"], float(manifest["threshold"]), OnnxScorer(files["model.onnx"], io["output"])
    )


class OnlineFeatures:
    """Stored features from the Feast online store plus request-time features, in a model's input order."""

    def __init__(self, settings: Settings, salt: str) -> None:
        self.store = feature_store(settings)
        self.service = self.store.get_feature_service(FEATURE_SERVICE)
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
        frame = pd.DataFrame({k: v for k, v in stored.items() if k in features}).join(schedule_features(local))
        return frame.reindex(columns=features).to_numpy(dtype=np.float32, na_value=np.nan)


@dataclass
class Routing:
    """The deployment plan with its loaded models: what the service answers with, swapped whole on reload."""

    plan: DeploymentPlan
    models: dict[int, ServedModel]


def load_routing(settings: Settings, store: ArtifactStore, vault: Vault, ledger: AuditLedger) -> Routing:
    """The plan in the registry (or all traffic to the champion when there is none), every model in it loaded."""
    registry = Registry(store, vault, ledger)
    plan, _ = read_plan(registry, MODEL_NAME)
    if plan is None:
        champion = load_model(settings, store, vault, ledger)
        return Routing(DeploymentPlan([Variant("champion", champion.version, 100.0)]), {champion.version: champion})
    models = {v: load_model(settings, store, vault, ledger, version=v) for v in sorted(plan.versions())}
    return Routing(plan, models)
