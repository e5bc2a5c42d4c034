"""The deployment plan: which model versions serve which share of traffic, and an optional shadow.

It lives in the registry beside the model (`registry/<model>/deployment.json`), moves by
compare-and-swap and is audited. Assignment is sticky: a request key (the flight id) always
lands in the same bucket of 10,000, so a consumer sees one variant for one flight whatever
replica answers, and a canary step only moves the buckets it must.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field

from pipelines.errors import ConcurrentUpdate, RegistryError
from pipelines.registry.registry import PREFIX, Registry
from pipelines.security.audit import canonical_json

BUCKETS = 10_000


@dataclass(frozen=True)
class Variant:
    name: str
    version: int
    weight: float = 0.0  # percent of traffic; ignored for the shadow


@dataclass(frozen=True)
class DeploymentPlan:
    variants: list[Variant]
    shadow: Variant | None = None
    reason: str = ""
    history: list[dict] = field(default_factory=list)

    def __post_init__(self) -> None:
        names = [v.name for v in self.variants]
        if not self.variants or len(set(names)) != len(names):
            raise RegistryError(f"a plan needs one or more variants with distinct names; got {names}")
        if any(v.weight <= 0 for v in self.variants) or abs(sum(v.weight for v in self.variants) - 100) > 1e-9:
            raise RegistryError(
                f"variant weights must be positive and add up to 100; got {[v.weight for v in self.variants]}"
            )
        if self.shadow is not None and self.shadow.name in names:
            raise RegistryError(f"the shadow {self.shadow.name!r} must not also take live traffic")

    def assign(self, key: str) -> Variant:
        """The variant a request key belongs to (stable across processes and restarts)."""
        bucket = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") % BUCKETS
        edge = 0.0
        for variant in self.variants:
            edge += variant.weight * BUCKETS / 100
            if bucket < edge:
                return variant
        return self.variants[-1]

    @property
    def fallback(self) -> Variant:
        """The variant that answers when another fails: the one named champion, else the first."""
        return next((v for v in self.variants if v.name == "champion"), self.variants[0])

    def versions(self) -> set[int]:
        return {v.version for v in self.variants} | ({self.shadow.version} if self.shadow else set())

    def to_json(self) -> bytes:
        return canonical_json(asdict(self))

    @classmethod
    def from_json(cls, raw: bytes) -> DeploymentPlan:
        data = json.loads(raw)
        shadow = Variant(**data["shadow"]) if data.get("shadow") else None
        return cls([Variant(**v) for v in data["variants"]], shadow, data.get("reason", ""), data.get("history", []))


def plan_key(model: str) -> str:
    return f"{PREFIX}/{model}/deployment.json"


def read_plan(registry: Registry, model: str) -> tuple[DeploymentPlan | None, bytes | None]:
    key = plan_key(model)
    raw = registry.store.get(key) if registry.store.exists(key) else None
    return (DeploymentPlan.from_json(raw) if raw else None), raw


def write_plan(registry: Registry, model: str, plan: DeploymentPlan, *, expected: bytes | None) -> DeploymentPlan:
    """Store `plan` if the current one is still `expected` (CAS); every version in it must have passed the gate."""
    for version in sorted(plan.versions()):
        if not registry.manifest(model, version)["gate"]["passed"]:
            raise RegistryError(f"{model} v{version} was rejected by the gate and cannot take traffic")
    previous = DeploymentPlan.from_json(expected) if expected else None
    summary = {
        "variants": [asdict(v) for v in plan.variants],
        "shadow": asdict(plan.shadow) if plan.shadow else None,
        "reason": plan.reason,
    }
    stored = DeploymentPlan(plan.variants, plan.shadow, plan.reason, (previous.history if previous else []) + [summary])
    try:
        registry.store.swap(plan_key(model), expected, stored.to_json())
    except ConcurrentUpdate:
        raise ConcurrentUpdate(f"the deployment plan of {model} changed since it was read; read it again") from None
    registry.ledger.append("deployment.plan", model, summary)
    return stored
