"""Validation: Great Expectations checkpoints over raw partitions."""

from pipelines.validation.checkpoints import ValidationOutcome, validate_partition

__all__ = ["ValidationOutcome", "validate_partition"]
