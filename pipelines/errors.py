"""Errors the platform raises on purpose. Each message names what is wrong and what to do."""


class PlatformError(Exception):
    """Base class of the platform's own errors."""


class SettingsError(PlatformError):
    """A configuration value is missing or wrong; the message names the variable."""


class SourceFormatError(PlatformError):
    """A raw source file is missing, unreadable or does not match its declared schema."""


class MissingPartitionError(PlatformError):
    """A logical date lies outside what the source covers, or was never landed."""


class EmptyPartitionError(PlatformError):
    """The source covers the logical date but holds no rows for it."""


class ValidationFailed(PlatformError):
    """A Great Expectations checkpoint failed; the message lists the failed expectations."""


class TransformFailed(PlatformError):
    """dbt build failed; the message names the failing nodes."""
