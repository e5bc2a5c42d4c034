"""Land the raw zone: one Parquet partition per logical date, reference tables as snapshots.

Landing is idempotent: re-landing a date replaces exactly that partition, atomically
(the new file is written beside the old one and renamed over it).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipelines.errors import EmptyPartitionError, MissingPartitionError
from pipelines.ingest.source import default_source_dir, read_source, row_dates, rows_of_day, source_path
from pipelines.settings import Settings
from pipelines.usecases.spec import Sources, SourceTable, UseCase


@dataclass(frozen=True)
class LandedPartition:
    table: str
    logical_date: str
    path: str
    rows: int
    sha256: str
    source_sha256: str


def partition_path(settings: Settings, table: str, day: dt.date) -> Path:
    return settings.raw_dir / table / f"date={day.isoformat()}" / "part.parquet"


def reference_path(settings: Settings, table: str) -> Path:
    return settings.raw_dir / "reference" / f"{table}.parquet"


def manifest_path(path: Path) -> Path:
    """Where the manifest (rows, SHA-256 of the file and of its source) of a landed file lives."""
    return path.with_name(f"{path.stem}.manifest.json")


def source_dir(settings: Settings, sources: Sources) -> Path:
    """Where a use case's source files are read from: PLATFORM_SOURCE_DIR, else its package's data folder."""
    return settings.source_dir or default_source_dir(sources)


def land_day(settings: Settings, usecase: UseCase, day: dt.date) -> list[LandedPartition]:
    """Land the partitions of one logical date (a local date) of each day-partitioned table of the spec."""
    sources = usecase.sources
    return [_land_partition(settings, sources, name, day) for name in sources.partitioned]


def land_reference(settings: Settings, usecase: UseCase) -> list[LandedPartition]:
    """Land the spec's reference tables as whole snapshots."""
    sources = usecase.sources
    folder = source_dir(settings, sources)
    landed = []
    for name in sources.reference:
        table = sources.tables[name]
        data = read_source(folder, name, table)
        if data.num_rows == 0:
            raise EmptyPartitionError(f"reference table {name} in {folder} has no rows")
        landed.append(_write(settings, name, table, "reference", data, reference_path(settings, name), folder))
    return landed


def landed_partition(settings: Settings, table: str, day: dt.date) -> Path:
    """The landed partition's path; MissingPartitionError if that date was never landed."""
    path = partition_path(settings, table, day)
    if not path.is_file():
        raise MissingPartitionError(
            f"raw {table} partition for {day} was not landed (looked for {path}); "
            "run the use case's ingest DAG for that date first"
        )
    return path


def _land_partition(settings: Settings, sources: Sources, name: str, day: dt.date) -> LandedPartition:
    table = sources.tables[name]
    folder = source_dir(settings, sources)
    data = read_source(folder, name, table)
    first, last = _date_range(data, table)
    if first is None or not first <= day <= last:
        raise MissingPartitionError(
            f"no {name} source data for {day}: {source_path(folder, name, table)} covers "
            f"{first}..{last}; choose a logical date in that range"
        )
    partition = rows_of_day(data, day, table)
    if partition.num_rows == 0:
        raise EmptyPartitionError(
            f"{name} source {source_path(folder, name, table)} has no rows for {day}, although it "
            f"covers {first}..{last}; the source is incomplete: re-export it, or skip this date"
        )
    return _write(settings, name, table, day.isoformat(), partition, partition_path(settings, name, day), folder)


def _date_range(data: pa.Table, table: SourceTable) -> tuple[dt.date | None, dt.date | None]:
    if data.num_rows == 0:
        return None, None
    bounds = pc.min_max(row_dates(data, table))
    return bounds["min"].as_py(), bounds["max"].as_py()


def _write(
    settings: Settings, name: str, table: SourceTable, logical_date: str, data: pa.Table, path: Path, folder: Path
) -> LandedPartition:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=".landing-", suffix=".parquet")
    os.close(fd)
    try:
        pq.write_table(data, tmp_name, compression="zstd")
        digest = _sha256(Path(tmp_name))
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    landed = LandedPartition(
        table=name,
        logical_date=logical_date,
        path=str(path),
        rows=data.num_rows,
        sha256=digest,
        source_sha256=_sha256(source_path(folder, name, table)),
    )
    fd, tmp_manifest = tempfile.mkstemp(dir=path.parent, prefix=".manifest-", suffix=".json")
    with os.fdopen(fd, "w") as handle:
        handle.write(json.dumps(asdict(landed), indent=2) + "\n")
    os.replace(tmp_manifest, manifest_path(path))
    return landed


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
