"""The spec's strict column types, and what every reader's rows are made to meet before they land.

A source's rows become exactly the spec's columns, in its order and types: a missing column, text where a
number is declared, a number that does not fit its type (an int8 that is 300, a count that is 1.5) is
refused with the table, the column, the declared and the found type and an example value. A timestamp
without a time zone (a MariaDB DATETIME, a `timestamp without time zone`) is read as UTC.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from pipelines.errors import SourceFormatError
from pipelines.usecases.spec import SourceTable

# The spec's column types (pipelines/usecases/sources.py ColumnType) as Arrow types.
ARROW_TYPES: dict[str, pa.DataType] = {
    "int8": pa.int8(),
    "int16": pa.int16(),
    "int32": pa.int32(),
    "int64": pa.int64(),
    "float64": pa.float64(),
    "string": pa.string(),
    "timestamp": pa.timestamp("s", tz="UTC"),
}


def schema_of(table: SourceTable) -> pa.Schema:
    """A source table's columns and types as the spec publishes them."""
    return pa.schema([(name, ARROW_TYPES[kind]) for name, kind in table.columns.items()])


def conform(where: str, table: SourceTable, data: pa.Table) -> pa.Table:
    """`data` as exactly the spec's columns and types (extra columns dropped); SourceFormatError naming `where`
    (a table, a file, a query), the column, the declared and found types otherwise."""
    schema = schema_of(table)
    missing = [name for name in schema.names if name not in data.column_names]
    if missing:
        raise SourceFormatError(
            f"{where} has no column(s) {missing}; the spec declares {schema.names}. Add them to the source (or the "
            "query), or remove them from the spec's columns"
        )
    return pa.Table.from_arrays([_cast(where, table, field, data[field.name]) for field in schema], schema=schema)


def column_array(where: str, table: SourceTable, name: str, values: list) -> pa.Array:
    """A column of Python values (a database's rows) as Arrow, before `conform` types it."""
    try:
        return pa.array(values, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        declared = table.columns.get(name, "not declared")
        raise SourceFormatError(f"{where}: column {name} holds values of several types ({exc}); the spec declares "
                                f"{declared}. Cast it in the source or the query") from None  # fmt: skip


def _cast(where: str, table: SourceTable, field: pa.Field, column: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray:
    declared, found = table.columns[field.name], column.type
    if found == field.type:
        return column
    if pa.types.is_null(found):  # a column of nulls only (an empty day, or no value yet)
        return pa.chunked_array([pa.nulls(len(column), field.type)])
    numeric = pa.types.is_integer(found) or pa.types.is_floating(found) or pa.types.is_decimal(found)
    fits = {
        "timestamp": pa.types.is_timestamp(found),
        "string": pa.types.is_string(found) or pa.types.is_large_string(found),
    }.get(declared, numeric)
    if not fits:
        raise SourceFormatError(
            f"{where}: column {field.name} is declared {declared} but holds {found} (e.g. {_example(column)!r}); "
            "fix the source (or cast it in the query), or the spec's column type"
        )
    if declared == "timestamp":
        zoned = column if found.tz else pc.assume_timezone(column, "UTC")
        return pc.cast(zoned, field.type, safe=False)  # to whole seconds, in UTC
    try:
        return pc.cast(column, field.type, safe=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise SourceFormatError(
            f"{where}: column {field.name} is declared {declared}, and a value does not fit it ({exc}); fix the "
            "source, or widen the spec's column type"
        ) from None


def _example(column) -> object:
    valid = pc.drop_null(column)
    return valid[0].as_py() if len(valid) else None
