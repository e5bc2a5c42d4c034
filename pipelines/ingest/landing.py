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
from pipelines.ingest.source import default_source_dir, read_source, rows_of_day, source_path
from pipelines.settings import Settings

PARTITIONED_TABLES = ("flights", "weather")
REFERENCE_TABLES = ("planes", "airports", "airlines")


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


def land_day(settings: Settings, day: dt.date) -> list[LandedPartition]:
    """Land the flights and weather partitions of one logical date (local New York date)."""
    return [_land_partition(settings, table, day) for table in PARTITIONED_TABLES]


def land_reference(settings: Settings) -> list[LandedPartition]:
    """Land the reference tables (planes, airports, airlines) as whole snapshots."""
    source_dir = settings.source_dir or default_source_dir()
    landed = []
    for table in REFERENCE_TABLES:
        data = read_source(source_dir, table)
        if data.num_rows == 0:
            raise EmptyPartitionError(f"reference table {table} in {source_dir} has no rows")
        landed.append(_write(settings, table, "reference", data, reference_path(settings, table), source_dir))
    return landed


def landed_partition(settings: Settings, table: str, day: dt.date) -> Path:
    """The landed partition's path; MissingPartitionError if that date was never landed."""
    path = partition_path(settings, table, day)
    if not path.is_file():
        raise MissingPartitionError(
            f"raw {table} partition for {day} was not landed (looked for {path}); "
            f"run `platform land {day}` or the flight_delay_ingest DAG for that date first"
        )
    return path


def _land_partition(settings: Settings, table: str, day: dt.date) -> LandedPartition:
    source_dir = settings.source_dir or default_source_dir()
    data = read_source(source_dir, table)
    first, last = _date_range(data)
    if first is None or not first <= day <= last:
        raise MissingPartitionError(
            f"no {table} source data for {day}: {source_path(source_dir, table)} covers "
            f"{first}..{last}; choose a logical date in that range"
        )
    partition = rows_of_day(data, day)
    if partition.num_rows == 0:
        raise EmptyPartitionError(
            f"{table} source {source_path(source_dir, table)} has no rows for {day}, although it "
            f"covers {first}..{last}; the source is incomplete: re-export it, or skip this date"
        )
    return _write(settings, table, day.isoformat(), partition, partition_path(settings, table, day), source_dir)


def _date_range(data: pa.Table) -> tuple[dt.date | None, dt.date | None]:
    if data.num_rows == 0:
        return None, None
    keys = pc.add(
        pc.add(
            pc.multiply(pc.cast(data["year"], pa.int32()), 10000), pc.multiply(pc.cast(data["month"], pa.int32()), 100)
        ),
        pc.cast(data["day"], pa.int32()),
    )
    bounds = pc.min_max(keys)
    return _key_to_date(bounds["min"].as_py()), _key_to_date(bounds["max"].as_py())


def _key_to_date(key: int) -> dt.date:
    return dt.date(key // 10000, key // 100 % 100, key % 100)


def _write(
    settings: Settings, table: str, logical_date: str, data: pa.Table, path: Path, source_dir: Path
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
        table=table,
        logical_date=logical_date,
        path=str(path),
        rows=data.num_rows,
        sha256=digest,
        source_sha256=_sha256(source_path(source_dir, table)),
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
