"""The artifact store: one interface, a local folder (embedded default) or an S3 bucket.

Writes are atomic: a reader sees the whole object or nothing (a temp file renamed into
place; a single S3 PUT or a multipart upload that only appears when completed). A key
once written is never replaced by different bytes unless the caller says so (rewrap).
Before any write to a bucket its region is checked against the allowed regions.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tempfile
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote, urlparse

from pipelines.errors import ArtifactExists, ArtifactMissing, ConcurrentUpdate, ResidencyViolation, SettingsError
from pipelines.security.audit import AuditLedger, audit_ledger
from pipelines.settings import Settings

CHUNK = 8 * 1024 * 1024


def content_key(digest: str, prefix: str = "sha256") -> str:
    """Where content with this SHA-256 lives: `<prefix>/ab/abcdef...`."""
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise ValueError(f"{digest!r} is not a SHA-256 hex digest")
    return f"{prefix}/{digest[:2]}/{digest}"


def _check_key(key: str) -> str:
    parts = key.split("/")
    if not key or key.startswith("/") or any(part in ("", ".", "..") for part in parts):
        raise ValueError(f"artifact key {key!r} must be a relative path without empty, '.' or '..' parts")
    return key


class ArtifactStore(ABC):
    uri: str

    def put(self, key: str, data: bytes | BinaryIO, *, overwrite: bool = False) -> None:
        """Store `data` under `key` atomically.

        Without `overwrite`, writing the same bytes again is a no-op and different bytes
        raise ArtifactExists (streams are refused if the key exists at all).
        """
        _check_key(key)
        if not overwrite and self.exists(key):
            if isinstance(data, bytes) and self.get(key) == data:
                return
            raise ArtifactExists(f"{self.uri}/{key} already holds different bytes; artifacts are never replaced")
        self._write(key, data, overwrite)

    @abstractmethod
    def _write(self, key: str, data: bytes | BinaryIO, overwrite: bool) -> None: ...

    @abstractmethod
    def get(self, key: str) -> bytes: ...

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def keys(self, prefix: str = "") -> list[str]:
        """Every complete object's key under `prefix`, sorted."""

    @abstractmethod
    def delete(self, key: str) -> bool:
        """Remove `key` (an erasure, or data past its retention); whether it was there."""

    @abstractmethod
    def swap(self, key: str, expected: bytes | None, new: bytes) -> None:
        """Compare-and-swap: replace `key` with `new` only if it still holds `expected` (None: absent).

        Raises ConcurrentUpdate when another writer got there first.
        """

    def put_content(self, data: bytes) -> str:
        """Store bytes under their own SHA-256 (content addressed); returns the digest."""
        digest = hashlib.sha256(data).hexdigest()
        self.put(content_key(digest), data)
        return digest


class LocalStore(ArtifactStore):
    """A folder; partial writes live in `.partial/` and are renamed into place when whole."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.uri = root.as_uri()
        self._partial = root / ".partial"

    def _path(self, key: str) -> Path:
        return self.root / _check_key(key)

    def _write(self, key: str, data: bytes | BinaryIO, overwrite: bool) -> None:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        self._partial.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=self._partial, prefix=f"{uuid.uuid4().hex}-")
        try:
            with os.fdopen(fd, "wb") as handle:
                if isinstance(data, bytes):
                    handle.write(data)
                else:
                    shutil.copyfileobj(data, handle, CHUNK)
                handle.flush()
                os.fsync(handle.fileno())
            if overwrite:
                os.replace(temp, target)
            else:
                try:
                    os.link(temp, target)  # atomic create-if-absent
                except FileExistsError:
                    raise ArtifactExists(f"{self.uri}/{key} was written concurrently; not replaced") from None
        finally:
            Path(temp).unlink(missing_ok=True)

    def swap(self, key: str, expected: bytes | None, new: bytes) -> None:
        import fcntl

        locks = self.root / ".locks"
        locks.mkdir(parents=True, exist_ok=True)
        with open(locks / hashlib.sha256(_check_key(key).encode()).hexdigest(), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            current = self._path(key).read_bytes() if self.exists(key) else None
            if current != expected:
                raise ConcurrentUpdate(f"{self.uri}/{key} changed since it was read; read it again and retry")
            self._write(key, new, overwrite=True)

    def delete(self, key: str) -> bool:
        path = self._path(key)
        existed = path.is_file()
        path.unlink(missing_ok=True)
        return existed

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise ArtifactMissing(f"no artifact {self.uri}/{key}") from None

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def keys(self, prefix: str = "") -> list[str]:
        base = self.root / prefix if prefix else self.root
        if not base.exists():
            return []
        return sorted(
            path.relative_to(self.root).as_posix()
            for path in base.rglob("*")
            if path.is_file() and self._partial not in path.parents and self.root / ".locks" not in path.parents
        )


def bucket_region(client, bucket: str) -> str:
    """A bucket's region from GetBucketLocation (which answers null for us-east-1, 'EU' for eu-west-1)."""
    location = client.get_bucket_location(Bucket=bucket).get("LocationConstraint")
    return {None: "us-east-1", "": "us-east-1", "EU": "eu-west-1"}.get(location, location)


class S3Store(ArtifactStore):
    """A bucket (and prefix); every write first proves the bucket is in an allowed region."""

    def __init__(self, client, bucket: str, prefix: str, allowed_regions: list[str], ledger: AuditLedger,
                 on_violation: Callable[[str, str], None] | None = None) -> None:  # fmt: skip
        self.on_violation = on_violation  # (where, what): an incident, with the platform's settings
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.allowed_regions = list(allowed_regions)
        self.ledger = ledger
        self.uri = f"s3://{bucket}" + (f"/{self.prefix}" if self.prefix else "")

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{_check_key(key)}" if self.prefix else _check_key(key)

    def check_residency(self) -> str:
        """The bucket's region; ResidencyViolation (audited) when it is not an allowed one."""
        region = bucket_region(self.client, self.bucket)
        if region not in self.allowed_regions:
            details = {"bucket": self.bucket, "region": region, "allowed_regions": self.allowed_regions}
            message = (f"bucket {self.bucket} is in {region}, outside the allowed regions "
                       f"{', '.join(self.allowed_regions)}; nothing was written. Use a bucket in an allowed region "
                       "or change PLATFORM_ALLOWED_REGIONS if policy allows it.")  # fmt: skip
            raise residency_violation(self.ledger, f"s3://{self.bucket}", details, message, self.on_violation)
        return region

    def _write(self, key: str, data: bytes | BinaryIO, overwrite: bool) -> None:
        from boto3.s3.transfer import TransferConfig
        from botocore.exceptions import ClientError

        self.check_residency()
        conditional = {} if overwrite else {"IfNoneMatch": "*"}
        try:
            if isinstance(data, bytes) and len(data) <= CHUNK:
                self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data, **conditional)
            else:  # multipart: the object appears only when the upload completes
                stream = io.BytesIO(data) if isinstance(data, bytes) else data
                config = TransferConfig(multipart_threshold=CHUNK, multipart_chunksize=CHUNK, use_threads=False)
                self.client.upload_fileobj(stream, self.bucket, self._key(key), Config=config)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("PreconditionFailed", "ConditionalRequestConflict"):
                raise ArtifactExists(f"{self.uri}/{key} was written concurrently; not replaced") from None
            raise

    def swap(self, key: str, expected: bytes | None, new: bytes) -> None:
        """Conditional PUT on the object's ETag (If-Match), or on its absence (If-None-Match)."""
        from botocore.exceptions import ClientError

        self.check_residency()
        condition: dict = {"IfNoneMatch": "*"}
        if expected is not None:
            try:
                current = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                    raise ConcurrentUpdate(f"{self.uri}/{key} was removed since it was read") from None
                raise
            if current["Body"].read() != expected:
                raise ConcurrentUpdate(f"{self.uri}/{key} changed since it was read; read it again and retry")
            condition = {"IfMatch": current["ETag"]}
        try:
            self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=new, **condition)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("PreconditionFailed", "ConditionalRequestConflict"):
                raise ConcurrentUpdate(f"{self.uri}/{key} changed since it was read; read it again and retry") from None
            raise

    def get(self, key: str) -> bytes:
        from botocore.exceptions import ClientError

        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise ArtifactMissing(f"no artifact {self.uri}/{key}") from None
            raise

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(key))
            return True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise

    def delete(self, key: str) -> bool:
        self.check_residency()
        existed = self.exists(key)
        self.client.delete_object(Bucket=self.bucket, Key=self._key(key))
        return existed

    def keys(self, prefix: str = "") -> list[str]:
        full = self._key(prefix) if prefix else (f"{self.prefix}/" if self.prefix else "")
        strip = len(self.prefix) + 1 if self.prefix else 0
        found = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=full):
            found.extend(item["Key"][strip:] for item in page.get("Contents", []))
        return sorted(found)


def residency_violation(ledger: AuditLedger, where: str, details: dict, message: str,
                        on_violation: Callable[[str, str], None] | None) -> ResidencyViolation:  # fmt: skip
    """The violation audited (`residency.violation`) and reported (an incident), as the error to raise."""
    ledger.append("residency.violation", where, details)
    if on_violation is not None:
        on_violation(where, message)
    return ResidencyViolation(message)


def violation_incident(settings: Settings) -> Callable[[str, str], None]:
    """Report a residency violation at `where` as an incident (one per place until resolved)."""

    def report(where: str, message: str) -> None:
        from pipelines.alerting.incidents import platform_event

        platform_event(settings, "ResidencyViolation", f"residency:{where}", "platform", message)

    return report


def s3_client(settings: Settings, ledger: AuditLedger, conn_id: str | None = None, where: str | None = None):
    """A boto3 S3 client from an Airflow connection in Vault (keys, region, endpoint): the artifact store's, or
    `conn_id`'s for the bucket at `where` (a source's)."""
    import boto3

    from pipelines.security.secrets import connection
    from pipelines.security.vault import Vault

    conn_id, where = conn_id or settings.artifact_conn_id, where or settings.artifact_uri
    fields = connection(Vault.from_settings(settings), conn_id)
    extra = fields.get("extra") or {}
    extra = json.loads(extra) if isinstance(extra, str) else extra
    region = extra.get("region_name")
    if region and region not in settings.allowed_regions:
        details = {"connection": conn_id, "region": region, "allowed": settings.allowed_regions}
        message = (f"connection {conn_id!r} declares region {region}, outside the allowed regions "
                   f"{', '.join(settings.allowed_regions)}; point it at a store in an allowed region")  # fmt: skip
        raise residency_violation(ledger, where, details, message, violation_incident(settings))
    return boto3.client(
        "s3",
        region_name=region,
        endpoint_url=extra.get("endpoint_url"),
        aws_access_key_id=fields.get("login") or None,
        aws_secret_access_key=fields.get("password") or None,
    )


def artifact_store(settings: Settings, ledger: AuditLedger | None = None) -> ArtifactStore:
    """The configured store (PLATFORM_ARTIFACT_STORE_URI): file:// folder or s3://bucket/prefix."""
    uri = urlparse(settings.artifact_uri)
    if uri.scheme == "file":
        return LocalStore(Path(unquote(uri.path)))
    if uri.scheme == "s3":
        ledger = ledger or audit_ledger(settings)
        return S3Store(s3_client(settings, ledger), uri.netloc, uri.path, settings.allowed_regions, ledger,
                       violation_incident(settings))  # fmt: skip
    raise SettingsError(f"PLATFORM_ARTIFACT_STORE_URI: unsupported scheme in {settings.artifact_uri!r}")


def check_residency_at_startup(settings: Settings) -> None:
    """Every configured store that declares a region must be in an allowed region (raises otherwise)."""
    store = artifact_store(settings)
    if isinstance(store, S3Store):
        store.check_residency()
