"""Load validated raw partitions into the warehouse's `raw` schema, where dbt sources read them.

Both targets (DuckDB, PostgreSQL) get the same tables from the same column types.
A partition load deletes and inserts that logical date in one transaction, so a
re-run replaces exactly that date and a failure leaves the previous state.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
from collections.abc import Iterator
from typing import Protocol

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from pipelines.ingest.landing import landed_partition, reference_path
from pipelines.ingest.sources.typed import schema_of
from pipelines.security.secrets import postgres_connection
from pipelines.settings import Settings
from pipelines.usecases.spec import SourceTable, UseCase

RAW_SCHEMA = "raw"
PARTITION_COLUMN = "logical_date"

_SQL_TYPES = {
    pa.int8(): "SMALLINT",
    pa.int16(): "SMALLINT",
    pa.int32(): "INTEGER",
    pa.int64(): "BIGINT",
    pa.float64(): "DOUBLE PRECISION",
    pa.string(): "VARCHAR",
    pa.bool_(): "BOOLEAN",
    pa.date32(): "DATE",
    pa.timestamp("s", tz="UTC"): "TIMESTAMP WITH TIME ZONE",
    pa.timestamp("us", tz="UTC"): "TIMESTAMP WITH TIME ZONE",
    pa.timestamp("us"): "TIMESTAMP",
}


class _Cursor(Protocol):
    def execute(self, sql: str, params: tuple = ...) -> object: ...


def _ddl(name: str, table: SourceTable) -> str:
    columns = [f'"{f.name}" {_SQL_TYPES[f.type]}' for f in schema_of(table)]
    if table.day_partitioned:
        columns.append(f"{PARTITION_COLUMN} DATE NOT NULL")
    return f"CREATE TABLE IF NOT EXISTS {RAW_SCHEMA}.{name} ({', '.join(columns)})"


def create_table(schema: str, name: str, columns: pa.Schema) -> str:
    """CREATE TABLE IF NOT EXISTS of Arrow columns, in both targets' types."""
    body = ", ".join(f'"{f.name}" {_SQL_TYPES[f.type]}' for f in columns)
    return f"CREATE TABLE IF NOT EXISTS {schema}.{name} ({body})"


def load_day(settings: Settings, usecase: UseCase, day: dt.date) -> dict[str, int]:
    """Replace one logical date of each of the spec's day-partitioned raw tables; returns rows per table."""
    loaded = {}
    with transaction(settings) as (cursor, insert):
        for table in usecase.sources.partitioned:
            data = pq.read_table(landed_partition(settings, table, day))
            data = data.append_column(PARTITION_COLUMN, pa.array([day] * data.num_rows, pa.date32()))
            cursor.execute(_ddl(table, usecase.sources.tables[table]))
            cursor.execute(
                f"DELETE FROM {RAW_SCHEMA}.{table} WHERE {PARTITION_COLUMN} = {placeholder(settings)}",  # nosec B608 # identifiers are module constants; values are bound
                (day,),
            )
            insert(table, data)
            loaded[table] = data.num_rows
    return loaded


def load_reference(settings: Settings, usecase: UseCase) -> dict[str, int]:
    """Replace the spec's reference tables in the warehouse with the landed snapshots."""
    loaded = {}
    with transaction(settings) as (cursor, insert):
        for table in usecase.sources.reference:
            data = pq.read_table(reference_path(settings, table))
            cursor.execute(_ddl(table, usecase.sources.tables[table]))
            cursor.execute(f"DELETE FROM {RAW_SCHEMA}.{table}")  # nosec B608 # identifiers are module constants; values are bound
            insert(table, data)
            loaded[table] = data.num_rows
    return loaded


def placeholder(settings: Settings) -> str:
    """The target's bound-parameter marker."""
    return "?" if settings.warehouse_target == "duckdb" else "%s"


@contextlib.contextmanager
def transaction(settings: Settings, schema: str = RAW_SCHEMA) -> Iterator[tuple[_Cursor, object]]:
    """A cursor of the warehouse in one transaction (committed when the block ends, rolled back on an error), and
    a function inserting an Arrow table into a table of `schema` (created if need be)."""
    if settings.warehouse_target == "duckdb":
        import duckdb

        settings.warehouse_path.parent.mkdir(parents=True, exist_ok=True)
        con = duckdb.connect(str(settings.warehouse_path))
        con.begin()
        try:
            con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")

            def insert(table: str, data: pa.Table) -> None:
                con.register("_incoming", data)
                con.execute(f"INSERT INTO {schema}.{table} BY NAME SELECT * FROM _incoming")  # nosec B608 # identifiers are module constants; values are bound
                con.unregister("_incoming")

            yield con, insert
            con.commit()
        except BaseException:
            con.rollback()
            raise
        finally:
            con.close()
    else:
        import psycopg2

        con = psycopg2.connect(postgres_connection(settings).dsn())
        try:
            with con:  # commits on success, rolls back on error
                cursor = con.cursor()
                cursor.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")

                def insert(table: str, data: pa.Table) -> None:
                    buffer = io.BytesIO()
                    pacsv.write_csv(data, buffer, pacsv.WriteOptions(include_header=False))
                    buffer.seek(0)
                    columns = ", ".join(f'"{name}"' for name in data.column_names)
                    cursor.copy_expert(f"COPY {schema}.{table} ({columns}) FROM STDIN WITH (FORMAT csv)", buffer)

                yield cursor, insert
        finally:
            con.close()
