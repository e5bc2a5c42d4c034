"""Validation: Great Expectations checkpoints over raw partitions."""

from pipelines.validation.checkpoints import ValidationOutcome, data_docs_once, validate_partition

__all__ = ["ValidationOutcome", "data_docs_once", "validate_partition"]
