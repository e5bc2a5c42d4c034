"""The spec's `sources` section: where each raw table comes from, its strict columns, and how a row gets its day.

A table's `kind` says where it is read (one reader each, pipelines/ingest/sources/):

- `package_file`: a CSV (or a zip holding one) in the data folder of an installed package (`sources.package`);
- `database`: a table or a query of a transactional database (PostgreSQL, MariaDB/MySQL) reached through an
  Airflow connection kept in Vault (`connection`), read in a read-only transaction with a server-side cursor;
- `object_store`: Parquet or CSV files under an `s3://` or `file://` prefix (`uri`), the day's files under
  `layout` (`date={date}` by default); a bucket outside the allowed regions is refused before anything is read;
- `warehouse`: a table or query of the platform's own warehouse (DuckDB or PostgreSQL), for a raw zone that
  is managed elsewhere.

A day-partitioned table's rows get their logical day (a local date in the spec's time zone) from one of:
`partition` (date columns: [year, month, day], or [day of year] with `year`), `event_time` (a timestamp
column: the row's local date), `snapshot: true` (no event time: the whole table as extracted, one partition
per extraction day), or an object store's `layout` (the day's files). A table with none is a reference
table, landed whole. A database table may also be extracted incrementally (`incremental`: a high-water mark
on an `updated_at` column), so that late updates of earlier days are landed again in their days.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

ColumnType = Literal["int8", "int16", "int32", "int64", "float64", "string", "timestamp"]
SourceKind = Literal["package_file", "database", "object_store", "warehouse"]
RELATION = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")
LAYOUT_FIELDS = re.compile(r"\{(date|year|month|day)\}")
# The fields only some kinds read: a field set for another kind is a mistake worth naming.
KIND_FIELDS: dict[str, tuple[str, ...]] = {
    "package_file": ("file",),
    "database": ("connection", "table", "query", "incremental", "chunk_rows"),
    "object_store": ("uri", "format", "layout", "connection"),
    "warehouse": ("table", "query", "chunk_rows"),
}


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Incremental(_Section):
    updated_at: str = Field(description="The timestamp column a row's every change sets (an `updated_at`).")
    key: list[str] = Field(min_length=1, description="The columns that identify a row: a newer version replaces it.")


class SourceTable(_Section):
    kind: SourceKind = Field("package_file", description="Where the table is read: see the module's docs.")
    suite: str = Field(description="Its Great Expectations suite: expectations/<suite>.json.")
    columns: dict[str, ColumnType] = Field(min_length=1, description="Every column and its type, as published.")
    # package_file
    file: str | None = Field(None, description="package_file: the file in the data folder (CSV, or a zip of one).")
    # database, warehouse
    connection: str | None = Field(
        None, description="database: the Airflow connection (in Vault) of the database; object_store: of the bucket "
        "(default: the artifact store's)."
    )  # fmt: skip
    table: str | None = Field(None, description="database, warehouse: the table read, `schema.table` or `table`.")
    query: str | None = Field(None, description="database, warehouse: a SELECT read instead of a table.")
    chunk_rows: int = Field(50_000, ge=100, le=5_000_000, description="Rows fetched at a time (server-side cursor).")
    incremental: Incremental | None = Field(
        None, description="database: extract changes since the last high-water mark; late updates land again."
    )
    # object_store
    uri: str | None = Field(None, description="object_store: s3://bucket/prefix or file:///folder.")
    format: Literal["parquet", "csv"] = Field("parquet", description="object_store: the files' format.")
    layout: str | None = Field(
        None, description="object_store: where a day's files are under `uri`, from {date} or {year}/{month}/{day} "
        "(e.g. date={date}); none: a reference table, every file under `uri`."
    )  # fmt: skip
    # how a row gets its day
    partition: list[str] | None = Field(
        None, description="The columns holding a row's local date: [year, month, day], or [day of year] with `year`."
    )
    year: int | None = Field(
        None, ge=1900, le=2200, description="With a day-of-year partition: the year the file covers (it holds none)."
    )
    event_time: str | None = Field(
        None, description="A timestamp column: a row's day is its local date in the spec's time zone."
    )
    snapshot: bool = Field(
        False, description="No event time: the whole table as extracted is the partition of the extraction's day."
    )
    rows_per_day: tuple[int, int] | None = Field(
        None, description="Bounds of a day's rows, passed to the suite as min_rows and max_rows."
    )

    @property
    def day_partitioned(self) -> bool:
        return self.partition is not None or self.event_time is not None or self.snapshot or self.layout is not None

    @model_validator(mode="after")
    def _consistent(self) -> SourceTable:
        foreign = {f for fields in KIND_FIELDS.values() for f in fields} - set(KIND_FIELDS[self.kind])
        problems = [
            f"{name} is not read by a {self.kind} table (it is for {', '.join(_kinds_reading(name))})"
            for name in sorted(foreign)
            if getattr(self, name) != type(self).model_fields[name].default  # a round trip sets every field
        ]
        problems += self._where_problems() + self._day_problems()
        if self.rows_per_day is not None:
            if not self.day_partitioned:
                problems.append("rows_per_day bounds a day's partition: a reference table has none")
            elif not 0 <= self.rows_per_day[0] <= self.rows_per_day[1]:
                problems.append(f"rows_per_day {list(self.rows_per_day)} must be [min, max] with 0 <= min <= max")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def _where_problems(self) -> list[str]:
        if self.kind == "package_file" and not self.file:
            return ["a package_file table names its `file` in the package's data folder"]
        if self.kind == "database" and not self.connection:
            return ["a database table names its `connection` (an Airflow connection kept in Vault)"]
        if self.kind in ("database", "warehouse"):
            if (self.table is None) == (self.query is None):
                return [f"a {self.kind} table reads either a `table` or a `query`, exactly one"]
            if self.table is not None and not RELATION.match(self.table):
                return [f"table {self.table!r} must be `table` or `schema.table` (letters, digits, _)"]
            if self.query is not None and not re.match(r"^\s*(select|with)\b", self.query, re.IGNORECASE):
                return ["a query must be a single SELECT (or WITH ... SELECT): it is read, never run for effect"]
        if self.kind == "object_store":
            if not self.uri or not self.uri.startswith(("s3://", "file://")):
                return [f"an object_store table's uri must start with s3:// or file:// (got {self.uri!r})"]
            if self.layout is not None and not LAYOUT_FIELDS.search(self.layout):
                return [f"layout {self.layout!r} must place the day: {{date}}, or {{year}}, {{month}} and {{day}}"]
        return []

    def _day_problems(self) -> list[str]:
        given = {"partition": self.partition is not None, "event_time": self.event_time is not None,
                 "snapshot": self.snapshot, "layout": self.layout is not None}  # fmt: skip
        ways = [name for name, used in given.items() if used]
        problems = [f"a row gets its day one way, not {' and '.join(ways)}"] if len(ways) > 1 else []
        if self.kind == "object_store" and ways and ways != ["layout"]:
            problems.append(f"an object_store table's day is where its files are (`layout`), not its {ways[0]}")
        if self.partition is not None:
            if len(self.partition) not in (1, 3) or (len(self.partition) == 1) != (self.year is not None):
                problems.append(f"partition {self.partition} must name the year, month and day columns, or the "
                                "day-of-year column with the file's `year`")  # fmt: skip
            missing = [c for c in self.partition if c not in self.columns]
            if missing:
                problems.append(f"partition columns {missing} are not among the columns")
        if self.event_time is not None and self.columns.get(self.event_time) != "timestamp":
            found = self.columns.get(self.event_time, "no such column")
            problems.append(f"event_time {self.event_time!r} must be a timestamp column (found: {found})")
        if self.incremental is not None:
            if self.event_time is None and self.partition is None:
                problems.append("incremental extraction lands each changed row in its own day: give the table its "
                                "`event_time` or `partition` columns")  # fmt: skip
            if self.columns.get(self.incremental.updated_at) != "timestamp":
                problems.append(f"incremental.updated_at {self.incremental.updated_at!r} must be a timestamp column")
            missing = [c for c in self.incremental.key if c not in self.columns]
            if missing:
                problems.append(f"incremental.key columns {missing} are not among the columns")
        return problems


def _kinds_reading(field: str) -> list[str]:
    return [kind for kind, fields in KIND_FIELDS.items() if field in fields]


class Sources(_Section):
    package: str | None = Field(
        None, description="package_file tables: the PyPI package whose data folder holds the files (read, never "
        "imported)."
    )  # fmt: skip
    folder: str = Field("data", description="The data folder inside the package.")
    tables: dict[str, SourceTable] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> Sources:
        if not self.partitioned:
            raise ValueError(
                "at least one table must be partitioned by day (partition, event_time, snapshot or layout)"
            )
        files = [name for name, table in self.tables.items() if table.kind == "package_file"]
        if files and not self.package:
            raise ValueError(f"package_file tables {files} need `sources.package`, the package holding the files")
        return self

    @property
    def partitioned(self) -> list[str]:
        """The day-partitioned tables, in the spec's order; the first one's days are the landed days."""
        return [name for name, table in self.tables.items() if table.day_partitioned]

    @property
    def reference(self) -> list[str]:
        return [name for name, table in self.tables.items() if not table.day_partitioned]
