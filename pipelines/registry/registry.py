"""The model registry, on the artifact store: model name → numbered versions, and aliases.

    registry/<model>/versions/<000001>/manifest.json   signed manifest (rewritten only by an erasure: `amend_file`)
    registry/<model>/aliases/<alias>.json               {"version": n, "history": [...]}, moved by CAS
    registry/<model>/erasures.json                      the data subjects erased, and the versions trained on them
    sealed/<ab>/<sha256>                                 the encrypted files a manifest lists

A version's manifest lists every file's SHA-256 and carries lineage, metrics and the gate
report; it is signed with Transit. Reading a version verifies the signature; loading its files
decrypts them and checks every hash. A rejected version can never hold an alias.
"""

from __future__ import annotations

import datetime as dt
import json

from pipelines.errors import ArtifactExists, ConcurrentUpdate, RegistryError
from pipelines.security.artifacts import SEALED_PREFIX, SealedArtifacts, check_files, sign_manifest, verify_manifest
from pipelines.security.audit import AuditLedger, canonical_json
from pipelines.security.store import ArtifactStore, content_key
from pipelines.security.vault import Vault

ALIASES = ("champion", "challenger")
PREFIX = "registry"


class Registry:
    def __init__(self, store: ArtifactStore, vault: Vault, ledger: AuditLedger) -> None:
        self.store = store
        self.vault = vault
        self.ledger = ledger

    # Versions ---------------------------------------------------------------------------

    def _manifest_key(self, model: str, version: int) -> str:
        return f"{PREFIX}/{model}/versions/{version:06d}/manifest.json"

    def models(self) -> list[str]:
        return sorted({key.split("/")[1] for key in self.store.keys(PREFIX) if key.endswith("manifest.json")})

    def versions(self, model: str) -> list[int]:
        keys = self.store.keys(f"{PREFIX}/{model}/versions")
        return sorted(int(key.split("/")[3]) for key in keys if key.endswith("/manifest.json"))

    def register(self, model: str, manifest: dict) -> int:
        """Sign and store a manifest as the next version; its files must already be sealed in the store."""
        for name, entry in manifest["files"].items():
            if not self.store.exists(content_key(entry["sha256"], SEALED_PREFIX)):
                raise RegistryError(f"{name} ({entry['sha256'][:12]}…) is not sealed in {self.store.uri}")
        for _ in range(10):  # two registrations racing for a number: the loser takes the next one
            version = (self.versions(model) or [0])[-1] + 1
            body = {
                **manifest,
                "model": model,
                "version": version,
                "registered_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            }
            try:
                self.write_manifest(model, version, sign_manifest(self.vault, body))
            except ArtifactExists:
                continue
            status = "registered" if body["gate"]["passed"] else "rejected"
            self.ledger.append(
                f"model.{status}",
                f"{model}/v{version}",
                {"family": body.get("family"), "reasons": body["gate"].get("reasons", [])},
            )
            return version
        raise ConcurrentUpdate(f"could not claim a version number for {model} after 10 tries")

    def write_manifest(self, model: str, version: int, signed: dict) -> None:
        """Store a signed manifest; different bytes under an existing version raise ArtifactExists."""
        self.store.put(self._manifest_key(model, version), canonical_json(signed))

    def manifest(self, model: str, version: int) -> dict:
        """A version's manifest, after its signature verifies."""
        key = self._manifest_key(model, version)
        if not self.store.exists(key):
            raise RegistryError(f"{model} has no version {version} (versions: {self.versions(model)})")
        signed = json.loads(self.store.get(key))
        return verify_manifest(self.vault, signed, f"{self.store.uri}/{key}")

    def load_files(self, model: str, version: int, names: list[str] | None = None) -> tuple[dict, dict[str, bytes]]:
        """The manifest and the decrypted files (all, or `names`), each checked against its listed hash."""
        manifest = self.manifest(model, version)
        sealed = SealedArtifacts(self.store, self.vault, self.ledger)
        wanted = names or list(manifest["files"])
        files = {n: sealed.get(manifest["files"][n]["sha256"], name=f"{model}/v{version}/{n}") for n in wanted}
        check_files({"files": {n: manifest["files"][n] for n in wanted}}, files, f"{model} v{version}")
        return manifest, files

    def amend_file(self, model: str, version: int, name: str, data: bytes, amendment: dict) -> dict:
        """Replace file `name` of a version with `data` (an erasure), sealed anew: the manifest lists the new hash and
        the amendment and is signed again; the old sealed object is deleted unless another version lists it."""
        key = self._manifest_key(model, version)
        manifest = self.manifest(model, version)
        old = manifest["files"][name]["sha256"]
        digest = SealedArtifacts(self.store, self.vault, self.ledger).put(data, name=f"{model}/v{version}/{name}")
        manifest["files"][name] = {**manifest["files"][name], "sha256": digest, "size": len(data)}
        manifest["amendments"] = [*manifest.get("amendments", []), {**amendment, "file": name}]
        self.store.put(key, canonical_json(sign_manifest(self.vault, manifest)), overwrite=True)
        listed = {entry["sha256"] for m in self.models() for v in self.versions(m)
                  for entry in self.manifest(m, v)["files"].values()}  # fmt: skip
        if old not in listed:
            self.store.delete(content_key(old, SEALED_PREFIX))
        self.ledger.append("model.amended", f"{model}/v{version}", {"file": name, "old": old, "new": digest,
                                                                   **amendment})  # fmt: skip
        return manifest

    def delete_version(self, model: str, version: int) -> None:
        """Delete a version past its retention: its sealed files (unless another version lists them), then its
        manifest; audited. A version an alias points at is refused."""
        for alias in ALIASES:
            if (self.alias(model, alias) or {}).get("version") == version:
                raise RegistryError(f"{model} v{version} is the {alias}: move the alias before deleting it")
        files = {entry["sha256"] for entry in self.manifest(model, version)["files"].values()}
        others = {entry["sha256"] for m in self.models() for v in self.versions(m) if (m, v) != (model, version)
                  for entry in self.manifest(m, v)["files"].values()}  # fmt: skip
        for digest in sorted(files - others):
            self.store.delete(content_key(digest, SEALED_PREFIX))
        self.store.delete(self._manifest_key(model, version))
        self.ledger.append("model.deleted", f"{model}/v{version}", {"files": len(files - others)})

    def record_erasure(self, model: str, subject: str, versions: list[int]) -> dict:
        """Mark the versions trained on an erased subject (`subject`: its salted hash); the document."""
        key = f"{PREFIX}/{model}/erasures.json"
        for _ in range(10):
            raw = self.store.get(key) if self.store.exists(key) else None
            erasures = json.loads(raw)["erasures"] if raw else []
            if any(e["subject"] == subject for e in erasures):
                return {"erasures": erasures}
            erasures.append({"subject": subject, "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                             "versions": versions})  # fmt: skip
            try:
                self.store.swap(key, raw, canonical_json({"erasures": erasures}))
            except ConcurrentUpdate:
                continue
            return {"erasures": erasures}
        raise ConcurrentUpdate(f"could not record the erasure in {key} after 10 tries")

    def erasures(self, model: str) -> list[dict]:
        key = f"{PREFIX}/{model}/erasures.json"
        return json.loads(self.store.get(key))["erasures"] if self.store.exists(key) else []

    # Aliases ----------------------------------------------------------------------------

    def _alias_key(self, model: str, alias: str) -> str:
        if alias not in ALIASES:
            raise RegistryError(f"unknown alias {alias!r}; aliases are {', '.join(ALIASES)}")
        return f"{PREFIX}/{model}/aliases/{alias}.json"

    def alias(self, model: str, alias: str) -> dict | None:
        """{"version": n, "history": [...]} or None when the alias points nowhere."""
        key = self._alias_key(model, alias)
        return json.loads(self.store.get(key)) if self.store.exists(key) else None

    def move_alias(self, model: str, alias: str, version: int, *, expected: int | None, reason: str) -> dict:
        """Point `alias` at `version` if it still points at `expected` (compare-and-swap), audited."""
        key = self._alias_key(model, alias)
        if version not in self.versions(model):
            raise RegistryError(f"{model} has no version {version}")
        gate = self.manifest(model, version)["gate"]
        if not gate["passed"]:
            raise RegistryError(
                f"{model} v{version} was rejected by the gate and can never be {alias}: "
                + "; ".join(gate.get("reasons", []))
            )
        raw = self.store.get(key) if self.store.exists(key) else None
        current = json.loads(raw) if raw else None
        if (current["version"] if current else None) != expected:
            raise ConcurrentUpdate(
                f"{model} {alias} is v{current['version'] if current else None}, "
                f"not v{expected}: someone moved it; read it again"
            )
        history = (current["history"] if current else []) + [
            {"version": version, "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "reason": reason}
        ]
        document = {"version": version, "history": history}
        self.store.swap(key, raw, canonical_json(document))
        self.ledger.append(f"alias.{alias}", f"{model}/v{version}", {"from": expected, "reason": reason})
        return document

    def promote(self, model: str, version: int, alias: str = "champion", reason: str = "promoted") -> dict:
        current = self.alias(model, alias)
        return self.move_alias(model, alias, version, expected=current["version"] if current else None, reason=reason)

    def rollback(self, model: str, alias: str = "champion", reason: str = "rolled back") -> dict:
        """Point the alias back at the version it held before the current one."""
        current = self.alias(model, alias)
        earlier = [h["version"] for h in (current or {}).get("history", [])[:-1] if h["version"] != current["version"]]
        if not earlier:
            raise RegistryError(f"{model} {alias} has no earlier version to roll back to")
        return self.move_alias(model, alias, earlier[-1], expected=current["version"], reason=reason)
