"""Where a use case's raw tables are read: one reader per `kind` of the spec's sources (pipelines/usecases/
sources.py), behind one interface. Each returns the rows with the spec's strict types and says what it read,
for the landed partition's lineage: the file and its SHA-256, the connection and the query, the bucket's files
and theirs."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pyarrow as pa

from pipelines.settings import Settings
from pipelines.usecases.spec import UseCase


@dataclass(frozen=True)
class Extract:
    rows: pa.Table  # the spec's columns, in its types
    lineage: dict  # what was read: kind, where, how, and hashes or counts


def reader(settings: Settings, usecase: UseCase, name: str):
    """The reader of table `name` of `usecase`, by its kind."""
    from pipelines.ingest.sources.object_store import ObjectStore
    from pipelines.ingest.sources.package_file import PackageFile
    from pipelines.ingest.sources.sql import Database, WarehouseTable

    kinds = {"package_file": PackageFile, "database": Database, "object_store": ObjectStore,
             "warehouse": WarehouseTable}  # fmt: skip
    return kinds[usecase.sources.tables[name].kind](settings, usecase, name)


def extract_day(settings: Settings, usecase: UseCase, name: str, day: dt.date) -> Extract:
    """The rows of table `name` whose logical day is `day` (a snapshot table: all of them, as they are now)."""
    return Extract(*reader(settings, usecase, name).day(day))


def extract_whole(settings: Settings, usecase: UseCase, name: str) -> Extract:
    """Every row of table `name` (a reference table)."""
    return Extract(*reader(settings, usecase, name).whole())
