"""Sealed artifacts and signed manifests against the session's real OpenBao: round trip, tampering,
least privilege, key rotation and rewrap, and an unreachable Vault that leaves no plaintext."""

from __future__ import annotations

import copy
import hashlib
import json
import os
import tempfile
import time
from pathlib import Path

import pytest

from pipelines.errors import AccessDenied, ArtifactTampered, SignatureInvalid, VaultUnavailable
from pipelines.security.artifacts import (
    SEALED_PREFIX,
    Envelope,
    SealedArtifacts,
    check_files,
    rotate_keys,
    sign_manifest,
    verify_manifest,
)
from pipelines.security.store import LocalStore, content_key
from pipelines.security.vault import Vault

MARKER = b"PLAINTEXT-MODEL-BYTES-7f3a"


def _model_bytes(size: int = 200_000) -> bytes:
    return MARKER + os.urandom(size) + MARKER


@pytest.fixture
def training(openbao, store, ledger):
    return SealedArtifacts(store, openbao.role("training"), ledger)


@pytest.fixture
def serving(openbao, store, ledger):
    return SealedArtifacts(store, openbao.role("serving"), ledger)


def _stored(store, digest) -> bytes:
    return store.get(content_key(digest, SEALED_PREFIX))


def test_round_trip_training_seals_serving_opens(training, serving, store, ledger):
    data = _model_bytes()
    digest = training.put(data, name="model.onnx")
    assert digest == hashlib.sha256(data).hexdigest()
    stored = _stored(store, digest)
    assert MARKER not in stored  # no plaintext at rest
    envelope = Envelope.from_bytes(stored)
    assert envelope.header["wrapped_key"].startswith("vault:v")
    assert {"key_version", "nonce", "wrapped_key"} <= envelope.header.keys()
    assert serving.get(digest, name="model.onnx") == data
    actions = [(r.action, r.details.get("outcome")) for r in ledger.records()]
    assert actions == [("artifact.seal", None), ("artifact.decrypt", "ok")]


def test_each_artifact_gets_its_own_data_key(training, store):
    first, second = training.put(_model_bytes(1000)), training.put(_model_bytes(1000))
    headers = [Envelope.from_bytes(_stored(store, d)).header for d in (first, second)]
    assert headers[0]["wrapped_key"] != headers[1]["wrapped_key"]
    assert headers[0]["nonce"] != headers[1]["nonce"]


@pytest.mark.parametrize("where", ["ciphertext", "tag", "header_sha256", "wrapped_key"])
def test_one_altered_byte_is_refused(training, serving, store, where):
    data = _model_bytes(5000)
    digest = training.put(data)
    key = content_key(digest, SEALED_PREFIX)
    envelope = Envelope.from_bytes(store.get(key))
    if where == "ciphertext":
        body = bytearray(envelope.ciphertext)
        body[100] ^= 0x01
        tampered = Envelope(envelope.header, bytes(body))
    elif where == "tag":
        body = bytearray(envelope.ciphertext)
        body[-1] ^= 0x80
        tampered = Envelope(envelope.header, bytes(body))
    elif where == "header_sha256":
        forged = hashlib.sha256(b"another model").hexdigest()
        tampered = Envelope({**envelope.header, "sha256": forged}, envelope.ciphertext)
    else:
        wrapped = envelope.header["wrapped_key"]
        flipped = wrapped[:-6] + ("A" if wrapped[-6] != "A" else "B") + wrapped[-5:]
        tampered = Envelope({**envelope.header, "wrapped_key": flipped}, envelope.ciphertext)
    store.put(key, tampered.to_bytes(), overwrite=True)
    with pytest.raises(ArtifactTampered, match=key):
        serving.get(digest)


def test_a_truncated_or_foreign_file_is_refused(training, serving, store):
    digest = training.put(_model_bytes(5000))
    key = content_key(digest, SEALED_PREFIX)
    store.put(key, b"\x08\x01onnx-model-in-clear", overwrite=True)
    with pytest.raises(ArtifactTampered, match="not a sealed artifact"):
        serving.get(digest)


def test_training_cannot_decrypt_and_the_attempt_is_audited(training, ledger):
    digest = training.put(_model_bytes(1000))
    with pytest.raises(AccessDenied, match="transit/artifacts decrypt.*AppRole training"):
        training.get(digest)
    last = list(ledger.records())[-1]
    assert (last.action, last.details["outcome"]) == ("artifact.decrypt", "AccessDenied")


def test_serving_cannot_seal_or_sign(serving, openbao):
    with pytest.raises(AccessDenied, match="data key"):
        serving.put(b"a model serving tried to write")
    with pytest.raises(AccessDenied, match="signing"):
        sign_manifest(openbao.role("serving"), {"files": {}})


def test_operator_rotates_and_rewraps_without_ever_decrypting(openbao, tmp_path, ledger):
    store = LocalStore(tmp_path / "rotation")
    training = SealedArtifacts(store, openbao.role("training"), ledger)
    serving = SealedArtifacts(store, openbao.role("serving"), ledger)
    operator = SealedArtifacts(store, openbao.role("operator"), ledger)
    old = _model_bytes(3000)
    old_digest = training.put(old)
    before = Envelope.from_bytes(_stored(store, old_digest)).key_version

    versions = rotate_keys(openbao.role("operator"))
    assert versions["artifacts"] == before + 1
    assert serving.get(old_digest) == old  # old versions stay readable until rewrapped
    new_digest = training.put(_model_bytes(3000))
    assert Envelope.from_bytes(_stored(store, new_digest)).key_version == before + 1

    counts = operator.rewrap_all()
    assert counts == {"rewrapped": 1, "current": 1}
    rewrapped = Envelope.from_bytes(_stored(store, old_digest))
    assert rewrapped.key_version == before + 1
    assert serving.get(old_digest) == old
    with pytest.raises(AccessDenied):
        operator.get(old_digest)


def test_a_signed_manifest_verifies_and_any_change_is_refused(openbao):
    files = {"model.onnx": b"onnx bytes", "model.ubj": b"xgboost bytes"}
    listed = {name: {"sha256": hashlib.sha256(b).hexdigest(), "size": len(b)} for name, b in files.items()}
    manifest = {"name": "flight_delay", "version": 7, "files": listed}
    signed = json.loads(json.dumps(sign_manifest(openbao.role("training"), manifest)))  # as stored and read back
    serving = openbao.role("serving")
    assert verify_manifest(serving, signed) == manifest
    check_files(manifest, files)

    tampered = copy.deepcopy(signed)
    tampered["manifest"]["files"]["model.onnx"]["sha256"] = hashlib.sha256(b"other").hexdigest()
    with pytest.raises(SignatureInvalid, match="altered after signing"):
        verify_manifest(serving, tampered)
    with pytest.raises(SignatureInvalid, match="model.onnx does not match"):
        check_files(manifest, {**files, "model.onnx": b"onnx bytez"})
    with pytest.raises(SignatureInvalid, match="partial set"):
        check_files(manifest, {"model.onnx": files["model.onnx"]})
    with pytest.raises(SignatureInvalid, match="not a signed manifest"):
        verify_manifest(serving, manifest)


def test_vault_unreachable_fails_closed_and_leaves_no_plaintext(tmp_path, ledger):
    started = time.time()
    store = LocalStore(tmp_path / "artifacts")
    dead = Vault("http://127.0.0.1:9", token="unused", identity="test")  # nothing listens on port 9
    sealed = SealedArtifacts(store, dead, ledger)
    data = _model_bytes(50_000)
    with pytest.raises(VaultUnavailable, match="unreachable.*nothing was done"):
        sealed.put(data, name="model.onnx")
    assert store.keys() == []
    # Nothing under the test's folders, and no new file in the system temp folder, holds the plaintext.
    candidates = [*tmp_path.rglob("*"), *Path(tempfile.gettempdir()).glob("*")]
    for path in candidates:
        if path.is_file() and path.stat().st_mtime >= started - 1:
            assert MARKER not in path.read_bytes(), f"plaintext found in {path}"
