"""Ingest: land raw partitions from the sources and load them into the warehouse."""

from pipelines.ingest.landing import (
    LandedPartition,
    land_day,
    land_reference,
    landed_partition,
    partition_path,
    reference_path,
    relanded_days,
)

__all__ = [
    "LandedPartition",
    "land_day",
    "land_reference",
    "landed_partition",
    "partition_path",
    "reference_path",
    "relanded_days",
]
