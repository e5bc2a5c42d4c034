"""Errors the platform raises on purpose. Each message names what is wrong and what to do."""


class PlatformError(Exception):
    """Base class of the platform's own errors."""


class SettingsError(PlatformError):
    """A configuration value is missing or wrong; the message names the variable."""


class SourceFormatError(PlatformError):
    """A raw source file is missing, unreadable or does not match its declared schema."""


class SourceUnavailable(PlatformError):
    """A source (a database, a bucket) cannot be reached; the message names it and what to check."""


class MissingPartitionError(PlatformError):
    """A logical date lies outside what the source covers, or was never landed."""


class EmptyPartitionError(PlatformError):
    """The source covers the logical date but holds no rows for it."""


class ValidationFailed(PlatformError):
    """A Great Expectations checkpoint failed; the message lists the failed expectations."""


class TransformFailed(PlatformError):
    """dbt build failed; the message names the failing nodes."""


class VaultUnavailable(PlatformError):
    """Vault/OpenBao cannot be reached or is sealed; nothing that needs it was done."""


class AccessDenied(PlatformError):
    """Vault refused an operation under the caller's policy."""


class SecretMissing(PlatformError):
    """A secret the platform needs is not in Vault; the message says where to write it."""


class ArtifactTampered(PlatformError):
    """An artifact's bytes, envelope or content hash do not match what was sealed."""


class SignatureInvalid(PlatformError):
    """A manifest's signature does not verify, or a file it lists does not match its hash."""


class ResidencyViolation(PlatformError):
    """A bucket lies outside the allowed regions; nothing was written to it."""


class ArtifactExists(PlatformError):
    """Different bytes were offered under a key that is already written."""


class AuditChainBroken(PlatformError):
    """The audit ledger's hash chain does not verify; the message names the first bad record."""


class ArtifactMissing(PlatformError):
    """No artifact is stored under the key asked for."""


class ConcurrentUpdate(PlatformError):
    """A compare-and-swap lost: the value changed since it was read. Read again and retry."""


class RegistryError(PlatformError):
    """A registry request that cannot be honoured (unknown model or version, a rejected model, ...)."""


class NotEnoughData(PlatformError):
    """A training window holds too few labelled flights (or only one class) to fit or judge a model."""


class DeployFailed(PlatformError):
    """The model service could not be reloaded or a release failed its smoke test; the plan was put back."""


class CanaryRolledBack(PlatformError):
    """A challenger breached the canary policy and all traffic went back to the champion."""


class StreamBatchMismatch(PlatformError):
    """The stream wrote feature values that the batch recomputes differently; the message names them."""


class NothingToDo(PlatformError):
    """A task found nothing to act on (a day the stream processor never saw); the message says why."""
