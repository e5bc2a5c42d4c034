"""The model registry on the artifact store with the session's OpenBao: versions, signed manifests,
refused overwrites, aliases by compare-and-swap (folder and S3), rejected versions, rollback."""

from __future__ import annotations

import hashlib
import json
import threading

import pytest

from pipelines.errors import (
    AccessDenied,
    ArtifactExists,
    ConcurrentUpdate,
    RegistryError,
    SignatureInvalid,
)
from pipelines.registry.registry import Registry
from pipelines.security.artifacts import SealedArtifacts, sign_manifest
from pipelines.security.audit import FileLedger

MODEL = "flight_delay"


@pytest.fixture
def registry(store, openbao, ledger):
    return Registry(store, openbao.role("evaluation"), ledger)


def manifest(openbao, store, ledger, passed: bool = True, payload: bytes = b"onnx model") -> dict:
    sealed = SealedArtifacts(store, openbao.role("training"), ledger)
    digest = sealed.put(payload, name="model.onnx")
    return {
        "family": "xgboost",
        "files": {"model.onnx": {"sha256": digest, "size": len(payload), "format": "onnx"}},
        "metrics": {"holdout": {"roc_auc": 0.7, "log_loss": 0.45}},
        "gate": {"passed": passed, "reasons": [] if passed else ["ROC AUC 0.51 is below the minimum 0.6"]},
    }


def test_register_numbers_signs_and_loads_versions(registry, openbao, store, ledger):
    first = registry.register(MODEL, manifest(openbao, store, ledger, payload=b"model one"))
    second = registry.register(MODEL, manifest(openbao, store, ledger, payload=b"model two"))
    assert (first, second) == (1, 2) and registry.versions(MODEL) == [1, 2]
    shown = registry.manifest(MODEL, 2)
    assert shown["version"] == 2 and shown["model"] == MODEL
    loaded, files = registry.load_files(MODEL, 2)
    assert files == {"model.onnx": b"model two"}
    assert loaded["files"]["model.onnx"]["sha256"] == hashlib.sha256(b"model two").hexdigest()
    actions = [r.action for r in ledger.records()]
    assert actions.count("model.registered") == 2 and "artifact.decrypt" in actions


def test_a_manifest_listing_an_unsealed_file_is_refused(registry):
    fake = {"files": {"model.onnx": {"sha256": "ab" * 32, "size": 1}}, "gate": {"passed": True}}
    with pytest.raises(RegistryError, match="not sealed"):
        registry.register(MODEL, fake)


def test_different_bytes_under_an_existing_version_are_refused(registry, openbao, store, ledger):
    version = registry.register(MODEL, manifest(openbao, store, ledger))
    original = registry.manifest(MODEL, version)
    forged = sign_manifest(openbao.role("training"), {**original, "metrics": {"holdout": {"roc_auc": 0.99}}})
    with pytest.raises(ArtifactExists, match="never replaced"):
        registry.write_manifest(MODEL, version, forged)
    assert registry.manifest(MODEL, version) == original


def test_an_edited_manifest_fails_verification(registry, openbao, store, ledger):
    version = registry.register(MODEL, manifest(openbao, store, ledger))
    key = f"registry/{MODEL}/versions/{version:06d}/manifest.json"
    signed = json.loads(store.get(key))
    signed["manifest"]["gate"]["passed"] = True
    signed["manifest"]["metrics"]["holdout"]["roc_auc"] = 0.99
    store.put(key, json.dumps(signed).encode(), overwrite=True)  # someone with write access to the bucket
    with pytest.raises(SignatureInvalid, match="altered after signing"):
        registry.manifest(MODEL, version)


def test_training_can_read_manifests_but_not_decrypt_models(openbao, store, ledger, registry):
    version = registry.register(MODEL, manifest(openbao, store, ledger))
    as_training = Registry(store, openbao.role("training"), ledger)
    assert as_training.manifest(MODEL, version)["version"] == version
    with pytest.raises(AccessDenied):
        as_training.load_files(MODEL, version)


def test_a_rejected_version_can_never_hold_an_alias(registry, openbao, store, ledger):
    rejected = registry.register(MODEL, manifest(openbao, store, ledger, passed=False))
    for alias in ("champion", "challenger"):
        with pytest.raises(RegistryError, match="rejected by the gate.*below the minimum"):
            registry.promote(MODEL, rejected, alias)
    assert registry.alias(MODEL, "champion") is None
    assert [r.action for r in ledger.records()].count("model.rejected") == 1


def test_aliases_move_by_compare_and_swap(registry, openbao, store, ledger):
    v1 = registry.register(MODEL, manifest(openbao, store, ledger, payload=b"1"))
    v2 = registry.register(MODEL, manifest(openbao, store, ledger, payload=b"2"))
    registry.move_alias(MODEL, "champion", v1, expected=None, reason="first champion")
    with pytest.raises(ConcurrentUpdate, match="champion is v1, not vNone"):
        registry.move_alias(MODEL, "champion", v2, expected=None, reason="stale reader")
    registry.move_alias(MODEL, "champion", v2, expected=v1, reason="canary passed")
    assert registry.alias(MODEL, "champion")["version"] == v2
    assert registry.rollback(MODEL)["version"] == v1
    history = registry.alias(MODEL, "champion")["history"]
    assert [h["version"] for h in history] == [v1, v2, v1]
    audited = [(r.action, r.subject, r.details["from"]) for r in ledger.records() if r.action == "alias.champion"]
    assert audited == [("alias.champion", f"{MODEL}/v1", None), ("alias.champion", f"{MODEL}/v2", 1),
                       ("alias.champion", f"{MODEL}/v1", 2)]  # fmt: skip


def test_concurrent_promotions_from_the_same_state_let_exactly_one_win(registry, openbao, store, ledger):
    versions = [registry.register(MODEL, manifest(openbao, store, ledger, payload=bytes([n]))) for n in range(6)]
    registry.promote(MODEL, versions[0])
    outcomes, barrier = [], threading.Barrier(5)

    def promote(version: int) -> None:
        barrier.wait()
        try:
            registry.move_alias(MODEL, "champion", version, expected=versions[0], reason="race")
            outcomes.append(("won", version))
        except ConcurrentUpdate:
            outcomes.append(("lost", version))

    threads = [threading.Thread(target=promote, args=(v,)) for v in versions[1:]]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [v for outcome, v in outcomes if outcome == "won"]
    assert len(winners) == 1 and len(outcomes) == 5
    assert registry.alias(MODEL, "champion")["version"] == winners[0]


def test_compare_and_swap_on_s3(tmp_path, openbao):
    """The same CAS on a bucket: conditional PUTs (If-None-Match, If-Match on the ETag)."""
    import boto3
    from moto.server import ThreadedMotoServer

    from pipelines.security.store import S3Store
    from tests.conftest import free_port

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        client = boto3.client("s3", region_name="me-central-1", endpoint_url=f"http://127.0.0.1:{port}",
                              aws_access_key_id="testing", aws_secret_access_key="testing")  # fmt: skip
        client.create_bucket(Bucket="models", CreateBucketConfiguration={"LocationConstraint": "me-central-1"})
        store = S3Store(client, "models", "registry-test", ["me-central-1"], FileLedger(tmp_path / "l.jsonl"))
        store.swap("aliases/champion.json", None, b'{"version": 1}')
        with pytest.raises(ConcurrentUpdate):
            store.swap("aliases/champion.json", None, b'{"version": 2}')
        with pytest.raises(ConcurrentUpdate):
            store.swap("aliases/champion.json", b'{"version": 7}', b'{"version": 2}')
        store.swap("aliases/champion.json", b'{"version": 1}', b'{"version": 2}')
        assert store.get("aliases/champion.json") == b'{"version": 2}'
    finally:
        server.stop()


def test_a_deployment_plan_moves_by_cas_and_never_routes_to_a_rejected_version(registry, openbao, store, ledger):
    from pipelines.deploy.plan import DeploymentPlan, Variant, read_plan, write_plan

    good = registry.register(MODEL, manifest(openbao, store, ledger, payload=b"good"))
    other = registry.register(MODEL, manifest(openbao, store, ledger, payload=b"other"))
    rejected = registry.register(MODEL, manifest(openbao, store, ledger, passed=False, payload=b"bad"))
    with pytest.raises(RegistryError, match=f"v{rejected} was rejected"):
        write_plan(
            registry,
            MODEL,
            DeploymentPlan([Variant("champion", good, 95), Variant("challenger", rejected, 5)]),
            expected=None,
        )
    first = write_plan(registry, MODEL, DeploymentPlan([Variant("champion", good, 100)], reason="first"), expected=None)
    _, raw = read_plan(registry, MODEL)
    with pytest.raises(ConcurrentUpdate, match="deployment plan"):
        write_plan(registry, MODEL, DeploymentPlan([Variant("champion", other, 100)]), expected=None)
    second = write_plan(
        registry,
        MODEL,
        DeploymentPlan([Variant("champion", good, 95), Variant("challenger", other, 5)], reason="canary 5%"),
        expected=raw,
    )
    stored, _ = read_plan(registry, MODEL)
    assert stored == second and [h["reason"] for h in stored.history] == ["first", "canary 5%"]
    assert first.history[0]["variants"][0]["version"] == good
    assert [r.details["reason"] for r in ledger.records() if r.action == "deployment.plan"] == ["first", "canary 5%"]
