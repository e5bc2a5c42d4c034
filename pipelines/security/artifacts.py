"""Sealed artifacts and signed manifests: envelope encryption and signing through Vault Transit.

Sealing: Transit hands out a fresh 256-bit data key per artifact (plaintext + wrapped under
the `artifacts` key); the artifact is encrypted here with AES-256-GCM and the plaintext key is
dropped. What is stored is one self-describing envelope:

    FOPSSEAL1\\n<header JSON>\\n<ciphertext + GCM tag>

The header holds the wrapped key, its key version and the nonce. The GCM associated data
binds the ciphertext to the artifact's SHA-256, size and key name, so any flipped byte in
ciphertext or header fails authentication. Rewrapping (after a key rotation) replaces only
the wrapped key: the ciphertext never changes and the plaintext never leaves Vault's side.

Nothing here writes plaintext anywhere: encryption happens in memory before any write,
and a failure to reach Vault fails the write before anything is stored.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass

import hvac.exceptions
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from pipelines.errors import ArtifactTampered, SignatureInvalid
from pipelines.security.audit import AuditLedger, canonical_json
from pipelines.security.store import ArtifactStore, content_key
from pipelines.security.vault import ARTIFACT_KEY, SIGNING_KEY, TRANSIT_MOUNT, Vault

MAGIC = b"FOPSSEAL1\n"
ALGORITHM = "AES-256-GCM"
SEALED_PREFIX = "sealed"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _key_version(wrapped: str) -> int:
    # Transit ciphertexts read "vault:v<version>:<base64>"
    return int(wrapped.split(":")[1].lstrip("v"))


@dataclass(frozen=True)
class Envelope:
    header: dict
    ciphertext: bytes

    @property
    def key_version(self) -> int:
        return self.header["key_version"]

    @property
    def sha256(self) -> str:
        return self.header["sha256"]

    def to_bytes(self) -> bytes:
        return MAGIC + canonical_json(self.header) + b"\n" + self.ciphertext

    @classmethod
    def from_bytes(cls, data: bytes, where: str = "artifact") -> Envelope:
        if not data.startswith(MAGIC):
            raise ArtifactTampered(f"{where} is not a sealed artifact (no {MAGIC.strip().decode()} header)")
        header_line, sep, ciphertext = data[len(MAGIC) :].partition(b"\n")
        try:
            header = json.loads(header_line)
            required = {"alg", "key", "key_version", "wrapped_key", "nonce", "sha256", "size"}
            if not sep or not isinstance(header, dict) or not required <= header.keys():
                raise ValueError("incomplete header")
        except ValueError as exc:
            raise ArtifactTampered(f"{where}: its envelope header is damaged ({exc})") from None
        return cls(header, ciphertext)

    def associated_data(self) -> bytes:
        return canonical_json({k: self.header[k] for k in ("alg", "key", "sha256", "size")})


def seal(vault: Vault, data: bytes) -> Envelope:
    """Encrypt `data` under a fresh Transit data key (raises VaultUnavailable/AccessDenied before any write)."""
    with vault.errors(f"creating a data key under transit/{ARTIFACT_KEY}"):
        key = vault.client.secrets.transit.generate_data_key(
            ARTIFACT_KEY, key_type="plaintext", mount_point=TRANSIT_MOUNT
        )["data"]
    plaintext_key = bytearray(base64.b64decode(key["plaintext"]))
    nonce = os.urandom(12)
    header = {"alg": ALGORITHM, "key": ARTIFACT_KEY, "key_version": _key_version(key["ciphertext"]),
              "wrapped_key": key["ciphertext"], "nonce": _b64(nonce),
              "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}  # fmt: skip
    envelope = Envelope(header, b"")
    try:
        ciphertext = AESGCM(bytes(plaintext_key)).encrypt(nonce, data, envelope.associated_data())
    finally:
        plaintext_key[:] = bytes(len(plaintext_key))
    return Envelope(header, ciphertext)


def unseal(vault: Vault, envelope: Envelope, where: str = "artifact") -> bytes:
    """Decrypt and check the content hash; ArtifactTampered on any mismatch."""
    with vault.errors(f"unwrapping the data key of {where} (transit/{ARTIFACT_KEY} decrypt)"):
        try:
            key = vault.client.secrets.transit.decrypt_data(
                ARTIFACT_KEY, envelope.header["wrapped_key"], mount_point=TRANSIT_MOUNT
            )["data"]["plaintext"]
        except hvac.exceptions.InvalidRequest as exc:
            raise ArtifactTampered(
                f"{where}: Vault cannot unwrap its data key ({exc}); the envelope was altered"
            ) from None
    try:
        data = AESGCM(base64.b64decode(key)).decrypt(
            base64.b64decode(envelope.header["nonce"]), envelope.ciphertext, envelope.associated_data()
        )
    except (InvalidTag, ValueError):
        raise ArtifactTampered(f"{where}: ciphertext or header fails authentication; refusing to load it") from None
    if hashlib.sha256(data).hexdigest() != envelope.sha256:
        raise ArtifactTampered(f"{where}: decrypted content does not match its SHA-256")
    return data


def rewrap(vault: Vault, envelope: Envelope) -> Envelope:
    """The same envelope with its data key wrapped under the newest key version."""
    with vault.errors(f"rewrapping a data key under transit/{ARTIFACT_KEY}"):
        wrapped = vault.client.secrets.transit.rewrap_data(
            ARTIFACT_KEY, envelope.header["wrapped_key"], mount_point=TRANSIT_MOUNT
        )["data"]["ciphertext"]
    return Envelope({**envelope.header, "wrapped_key": wrapped, "key_version": _key_version(wrapped)},
                    envelope.ciphertext)  # fmt: skip


def rotate_keys(vault: Vault) -> dict[str, int]:
    """Rotate the artifact and signing keys; returns each key's new latest version."""
    versions = {}
    for name in (ARTIFACT_KEY, SIGNING_KEY):
        with vault.errors(f"rotating transit/{name}"):
            vault.client.secrets.transit.rotate_key(name, mount_point=TRANSIT_MOUNT)
            versions[name] = vault.client.secrets.transit.read_key(name, mount_point=TRANSIT_MOUNT)["data"][
                "latest_version"
            ]
    return versions


# Manifests -----------------------------------------------------------------------------


def sign_manifest(vault: Vault, manifest: dict) -> dict:
    """{"manifest": ..., "signature": "vault:vN:..."} over the manifest's canonical JSON."""
    with vault.errors(f"signing a manifest with transit/{SIGNING_KEY}"):
        signature = vault.client.secrets.transit.sign_data(
            SIGNING_KEY, hash_input=_b64(canonical_json(manifest)), mount_point=TRANSIT_MOUNT
        )["data"]["signature"]
    return {"manifest": manifest, "signature": signature, "signing_key": f"{TRANSIT_MOUNT}/{SIGNING_KEY}"}


def verify_manifest(vault: Vault, signed: dict, where: str = "manifest") -> dict:
    """The manifest, if its signature verifies; SignatureInvalid otherwise."""
    if not isinstance(signed, dict) or not {"manifest", "signature"} <= signed.keys():
        raise SignatureInvalid(f"{where} is not a signed manifest (needs 'manifest' and 'signature')")
    with vault.errors(f"verifying {where} with transit/{SIGNING_KEY}"):
        try:
            valid = vault.client.secrets.transit.verify_signed_data(
                SIGNING_KEY, hash_input=_b64(canonical_json(signed["manifest"])),
                signature=signed["signature"], mount_point=TRANSIT_MOUNT,
            )["data"]["valid"]  # fmt: skip
        except hvac.exceptions.InvalidRequest as exc:
            raise SignatureInvalid(f"{where}: its signature is malformed ({exc})") from None
    if not valid:
        raise SignatureInvalid(f"{where}: signature does not match its contents; it was altered after signing")
    return signed["manifest"]


def check_files(manifest: dict, contents: dict[str, bytes], where: str = "manifest") -> None:
    """Every file the manifest lists is present with its SHA-256, and nothing unlisted is."""
    listed = manifest.get("files", {})
    if set(contents) != set(listed):
        raise SignatureInvalid(
            f"{where} lists {sorted(listed)} but {sorted(contents)} were offered; refusing to load a partial set"
        )
    for name, data in contents.items():
        if hashlib.sha256(data).hexdigest() != listed[name]["sha256"]:
            raise SignatureInvalid(f"{where}: file {name} does not match the SHA-256 its manifest lists")


# Sealed artifacts in a store ---------------------------------------------------------------


class SealedArtifacts:
    """Artifacts in a store, sealed, content addressed by the SHA-256 of their plaintext."""

    def __init__(self, store: ArtifactStore, vault: Vault, ledger: AuditLedger) -> None:
        self.store = store
        self.vault = vault
        self.ledger = ledger

    def put(self, data: bytes, *, name: str = "") -> str:
        """Seal and store; returns the digest. The same content twice is stored once."""
        digest = hashlib.sha256(data).hexdigest()
        key = content_key(digest, SEALED_PREFIX)
        if not self.store.exists(key):
            envelope = seal(self.vault, data)
            self.store.put(key, envelope.to_bytes())
            self.ledger.append("artifact.seal", f"{self.store.uri}/{key}",
                               {"name": name, "size": len(data), "key_version": envelope.key_version,
                                "wrapped_key": envelope.header["wrapped_key"]})  # fmt: skip
        return digest

    def get(self, digest: str, *, name: str = "") -> bytes:
        """Decrypt a stored artifact (audited, allowed or not); ArtifactTampered if it changed."""
        key = content_key(digest, SEALED_PREFIX)
        where = f"{self.store.uri}/{key}"
        envelope = Envelope.from_bytes(self.store.get(key), where)
        # The wrapped data key (a Transit ciphertext, as public as the sealed object's header) ties this record to
        # the Vault audit device's entry for the same decrypt (pipelines/governance/evidence.py).
        details = {"name": name, "wrapped_key": envelope.header["wrapped_key"]}
        try:
            data = unseal(self.vault, envelope, where)
        except Exception as exc:
            self.ledger.append("artifact.decrypt", where, {**details, "outcome": type(exc).__name__})
            raise
        if envelope.sha256 != digest:
            self.ledger.append("artifact.decrypt", where, {**details, "outcome": "ArtifactTampered"})
            raise ArtifactTampered(f"{where}: holds content {envelope.sha256}, not {digest}")
        self.ledger.append("artifact.decrypt", where, {**details, "outcome": "ok"})
        return data

    def rewrap_all(self) -> dict[str, int]:
        """Rewrap every sealed artifact's data key to the newest key version; counts rewrapped/current."""
        counts = {"rewrapped": 0, "current": 0}
        for key in self.store.keys(SEALED_PREFIX):
            envelope = Envelope.from_bytes(self.store.get(key), f"{self.store.uri}/{key}")
            renewed = rewrap(self.vault, envelope)
            if renewed.key_version == envelope.key_version:
                counts["current"] += 1
                continue
            self.store.put(key, renewed.to_bytes(), overwrite=True)
            counts["rewrapped"] += 1
        self.ledger.append("artifact.rewrap", self.store.uri, counts)
        return counts
