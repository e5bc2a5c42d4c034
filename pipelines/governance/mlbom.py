"""A model version's card as a CycloneDX 1.6 ML-BOM: the model as a `machine-learning-model` component with its
artifacts' SHA-256, its data as properties, and its `modelCard`, validated against CycloneDX's JSON schema.

Built with the CycloneDX library (cyclonedx-python-lib); its model classes have no model card yet (the attribute
is a stub in component.py), so the card is added to the library's JSON output here, and the whole document is
then checked with the library's own strict validator: what leaves is schema-valid CycloneDX.
"""

from __future__ import annotations

import json

from pipelines.errors import PlatformError


def ml_bom(card: dict, lineage: dict) -> str:
    """The CycloneDX JSON of a version: `card` from evidence.model_card, `lineage` from its evidence."""
    from cyclonedx.model import HashAlgorithm, HashType, Property
    from cyclonedx.model.bom import Bom
    from cyclonedx.model.component import Component, ComponentType
    from cyclonedx.output.json import JsonV1Dot6
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    name, version = card["name"].rsplit(" v", 1)
    files = [HashType(alg=HashAlgorithm.SHA_256, content=entry["sha256"]) for entry in lineage["files"].values()]
    facts = {
        "platform:owner": card["owner"], "platform:family": card["family"], "platform:task": card["task"],
        "platform:prediction_time": card["prediction_time"], "platform:registered_at": card["registered_at"],
        "platform:feature_service": card["data"]["feature_service"],
        "platform:training_window": json.dumps(card["data"]["window"]),
        "platform:raw_partitions": str(len(lineage["raw_partitions"])),
        "platform:dbt_manifest_sha256": str(lineage["dbt_manifest_sha256"]),
        "platform:commit": str(lineage["code"].get("commit")),
        "platform:residency": json.dumps(card["data"]["residency"]),
    }  # fmt: skip
    model = Component(name=name, version=version, type=ComponentType.MACHINE_LEARNING_MODEL, bom_ref="model",
                      hashes=files, properties=[Property(name=k, value=v) for k, v in facts.items()])  # fmt: skip
    bom = Bom()
    bom.metadata.component = model
    document = json.loads(JsonV1Dot6(bom).output_as_string())
    document["metadata"]["component"]["modelCard"] = _card(card)
    text = json.dumps(document, indent=2)
    problem = JsonStrictValidator(SchemaVersion.V1_6).validate_str(text)
    if problem is not None:
        raise PlatformError(f"the ML-BOM of {card['name']} is not valid CycloneDX 1.6: {str(problem)[:500]}")
    return text


def _card(card: dict) -> dict:
    metrics = [{"type": k, "value": str(v)} for k, v in card["metrics"]["holdout"].items() if v is not None]
    for column, values in (card.get("slices") or {}).items():
        for value, measured in values.items() if isinstance(values, dict) else []:
            for k, v in measured.items() if isinstance(measured, dict) else []:
                if isinstance(v, int | float) and k != "rows":
                    metrics.append({"type": k, "value": str(v), "slice": f"{column}={value}"})
    gate = card["limits"]["gate"]
    return {
        "modelParameters": {
            "approach": {"type": "supervised"},
            "task": card["task"],
            "architectureFamily": card["family"],
            "inputs": [{"format": f"feature {f}"} for f in card["data"]["features"]],
            "outputs": [{"format": "probability" if card["task"] == "binary_classification" else "number"}],
        },
        "quantitativeAnalysis": {"performanceMetrics": metrics},
        "considerations": {
            "users": [card["owner"]],
            "useCases": [card["intended_use"]],
            "technicalLimitations": [card["limits"]["scope"], *gate.get("reasons", [])],
        },
    }
