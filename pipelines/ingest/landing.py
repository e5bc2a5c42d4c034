"""Land the raw zone: one Parquet partition per table and logical date, reference tables as snapshots.

Landing is idempotent: re-landing a date replaces exactly that partition, atomically (the new file is
written beside the old one and renamed over it), whatever the source's kind (pipelines/ingest/sources).
Each landed file has a manifest beside it: rows, the file's SHA-256 and what was read (`source`: the
package file and its SHA-256, the connection and the query, the bucket's files and theirs).

A database table extracted `incremental`ly also lands the rows changed since its high-water mark: a changed
row of an earlier day that was landed already replaces its older version there (by the table's key), and
that day is landed again (its manifest says by which run); days not landed yet get the row when they are.
The mark moves only after every partition is written, so a failed run repeats the same changes.
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
from pipelines.ingest.sources import Extract, extract_day, extract_whole, reader
from pipelines.ingest.sources.days import row_days
from pipelines.settings import Settings
from pipelines.usecases.spec import UseCase


@dataclass(frozen=True)
class LandedPartition:
    table: str
    logical_date: str
    path: str
    rows: int
    sha256: str
    source: dict  # what was read (pipelines/ingest/sources: Extract.lineage)


def partition_path(settings: Settings, table: str, day: dt.date) -> Path:
    return settings.raw_dir / table / f"date={day.isoformat()}" / "part.parquet"


def reference_path(settings: Settings, table: str) -> Path:
    return settings.raw_dir / "reference" / f"{table}.parquet"


def manifest_path(path: Path) -> Path:
    """Where the manifest (rows, SHA-256 of the file, what was read) of a landed file lives."""
    return path.with_name(f"{path.stem}.manifest.json")


def land_day(settings: Settings, usecase: UseCase, day: dt.date) -> list[LandedPartition]:
    """Land the partitions of one logical date (a local date) of each day-partitioned table of the spec, and,
    for an incremental table, the earlier days its changed rows belong to (after the day's own partitions)."""
    from pipelines.governance.subjects import pseudonymise

    landed = []
    for name in usecase.sources.partitioned:
        extract = extract_day(settings, usecase, name, day)
        extract = Extract(pseudonymise(settings, usecase, name, extract.rows), extract.lineage)  # erased subjects
        if extract.rows.num_rows == 0:
            raise EmptyPartitionError(
                f"the {name} source has no rows for {day} ({_said(extract.lineage)}); the source is incomplete for "
                "that day: deliver it, or skip this date"
            )
        landed.append(_write(settings, name, day.isoformat(), extract.rows, partition_path(settings, name, day),
                             extract.lineage))  # fmt: skip
    for name in usecase.sources.partitioned:
        if usecase.sources.tables[name].incremental is not None:
            landed += _land_changes(settings, usecase, name, day)
    return landed


def land_reference(settings: Settings, usecase: UseCase) -> list[LandedPartition]:
    """Land the spec's reference tables as whole snapshots."""
    from pipelines.governance.subjects import pseudonymise

    landed = []
    for name in usecase.sources.reference:
        extract = extract_whole(settings, usecase, name)
        extract = Extract(pseudonymise(settings, usecase, name, extract.rows), extract.lineage)  # erased subjects
        if extract.rows.num_rows == 0:
            raise EmptyPartitionError(f"reference table {name} has no rows ({_said(extract.lineage)})")
        landed.append(_write(settings, name, "reference", extract.rows, reference_path(settings, name),
                             extract.lineage))  # fmt: skip
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


def relanded_days(landed: list[LandedPartition], day: dt.date) -> list[dt.date]:
    """The days other than `day` that a landing of `day` landed again (an incremental table's late changes)."""
    return sorted({dt.date.fromisoformat(p.logical_date) for p in landed} - {day})


def _land_changes(settings: Settings, usecase: UseCase, name: str, day: dt.date) -> list[LandedPartition]:
    from pipelines.governance.subjects import pseudonymise

    table = usecase.sources.tables[name]
    key, updated_at = table.incremental.key, table.incremental.updated_at
    state = settings.raw_dir / name / "_high_water_mark.json"
    mark = dt.datetime.fromisoformat(json.loads(state.read_text())["updated_at"]) if state.exists() else None
    newest = [pc.max(pq.read_table(partition_path(settings, name, day), columns=[updated_at])[updated_at]).as_py()]
    landed = []
    if mark is not None:
        changed, lineage = reader(settings, usecase, name).changed_since(mark)
        newest.append(pc.max(changed[updated_at]).as_py() if changed.num_rows else None)
        days = row_days(changed, table, usecase.tz)
        for other in sorted(set(days.to_pylist()) - {day}):
            path = partition_path(settings, name, other)
            if not path.is_file():  # landed whole, changes and all, when its own run comes
                continue
            rows = pseudonymise(settings, usecase, name, changed.filter(pc.equal(days, pa.scalar(other, pa.date32()))))
            kept = pq.read_table(path).cast(rows.schema)  # Parquet keeps seconds as milliseconds
            replaced = pc.is_in(_keys(kept, key), value_set=_keys(rows, key))
            merged = pa.concat_tables([kept.filter(pc.invert(replaced)), rows])
            merged = merged.sort_by([(c, "ascending") for c in merged.column_names])
            if merged.equals(kept.sort_by([(c, "ascending") for c in kept.column_names])):
                continue  # read again at the mark, unchanged: nothing to land
            source = {**lineage, "rows": rows.num_rows, "relanded_by": day.isoformat(),
                      "high_water_mark": mark.isoformat()}  # fmt: skip
            landed.append(_write(settings, name, other.isoformat(), merged, path, source))
    marks = [m for m in [mark, *newest] if m is not None]
    if marks:
        _atomic_text(state, json.dumps({"updated_at": max(marks).isoformat()}) + "\n")
    return landed


def amend(settings: Settings, path: Path, data: pa.Table, amendment: dict) -> LandedPartition:
    """Rewrite a landed file (an erasure) atomically; its manifest keeps what it was read from and lists the
    amendment (what changed, when, by which request), so its lineage says the file is no longer as landed."""
    landed = json.loads(manifest_path(path).read_text())
    source = {**landed["source"], "amendments": [*landed["source"].get("amendments", []), amendment]}
    return _write(settings, landed["table"], landed["logical_date"], data, path, source)


def _keys(data: pa.Table, key: list[str]) -> pa.Array:
    """One comparable value per row for the key columns (joined as text)."""
    if len(key) == 1:
        return pc.cast(data[key[0]], pa.string())
    return pc.binary_join_element_wise(*(pc.cast(data[c], pa.string()) for c in key), "\x1f")


def _said(lineage: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in lineage.items() if k in ("kind", "file", "connection", "query", "uri",
                                                                       "prefix"))  # fmt: skip


def _write(settings: Settings, name: str, logical_date: str, data: pa.Table, path: Path,
           source: dict) -> LandedPartition:  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=".landing-", suffix=".parquet")
    os.close(fd)
    try:
        pq.write_table(data, tmp_name, compression="zstd")
        digest = file_sha256(Path(tmp_name))
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    landed = LandedPartition(table=name, logical_date=logical_date, path=str(path), rows=data.num_rows,
                             sha256=digest, source=source)  # fmt: skip
    _atomic_text(manifest_path(path), json.dumps(asdict(landed), indent=2, default=str) + "\n")
    return landed


def _atomic_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-", suffix=".tmp")
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)


def file_sha256(path: Path) -> str:
    """A file's SHA-256, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def landed_through(settings: Settings, usecase: UseCase) -> dt.date | None:
    """The newest day whose every day-partitioned table has a landed partition (its manifest written)."""
    newest = []
    for table in usecase.sources.partitioned:
        days = [dt.date.fromisoformat(p.name.removeprefix("date=")) for p in (settings.raw_dir / table).glob("date=*")]
        landed = [d for d in days if manifest_path(partition_path(settings, table, d)).exists()]
        if not landed:
            return None
        newest.append(max(landed))
    return min(newest) if newest else None
