"""`kind: object_store`: Parquet or CSV files under an `s3://` or `file://` prefix, a day's files under the
table's `layout` (`date={date}`, `{year}/{month}/{day}`, ...); without a layout, a reference table of every
file under the prefix.

A bucket is read through the platform's S3 client (the table's `connection`, else the artifact store's) and
its region is checked first: a bucket outside the allowed regions is refused, audited and reported as an
incident before a byte is read. Each file's SHA-256 goes into the landed partition's lineage.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
from urllib.parse import unquote, urlparse

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from pipelines.errors import MissingPartitionError, SourceFormatError
from pipelines.ingest.sources.typed import conform, schema_of
from pipelines.settings import Settings
from pipelines.usecases.spec import UseCase


class ObjectStore:
    def __init__(self, settings: Settings, usecase: UseCase, name: str):
        from pathlib import Path

        from pipelines.security.audit import audit_ledger
        from pipelines.security.store import LocalStore, S3Store, s3_client, violation_incident

        self.usecase, self.name, self.table = usecase, name, usecase.sources.tables[name]
        uri = urlparse(self.table.uri)
        self.region = None
        if uri.scheme == "file":
            self.store = LocalStore(Path(unquote(uri.path)))
        else:
            ledger = audit_ledger(settings)
            client = s3_client(settings, ledger, self.table.connection, where=self.table.uri)
            self.store = S3Store(client, uri.netloc, uri.path, settings.allowed_regions, ledger,
                                 violation_incident(settings))  # fmt: skip
            self.region = self.store.check_residency()  # before anything is read

    def whole(self) -> tuple[pa.Table, dict]:
        return self._read("")

    def day(self, day: dt.date) -> tuple[pa.Table, dict]:
        folder = self.table.layout.format(date=day.isoformat(), year=f"{day.year:04d}", month=f"{day.month:02d}",
                                          day=f"{day.day:02d}").strip("/")  # fmt: skip
        return self._read(folder)

    def _read(self, folder: str) -> tuple[pa.Table, dict]:
        suffix, prefix = f".{self.table.format}", f"{folder}/" if folder else ""
        keys = [key for key in self.store.keys(folder) if key.startswith(prefix) and key.endswith(suffix)]
        if not keys:
            raise MissingPartitionError(
                f"no {self.table.format} files under {self.store.uri}/{prefix} for {self.usecase.name}.{self.name}: "
                f"the producer has not delivered them yet, or the layout {self.table.layout!r} does not match its "
                "folders"
            )
        files, parts = [], []
        for key in keys:
            blob = self.store.get(key)
            files.append({"key": key, "sha256": hashlib.sha256(blob).hexdigest(), "bytes": len(blob)})
            parts.append(conform(f"{self.store.uri}/{key}", self.table, self._parse(key, blob)))
        data = pa.concat_tables(parts)
        lineage = {"kind": "object_store", "uri": self.store.uri, "prefix": prefix, "region": self.region,
                   "files": files, "rows": data.num_rows}  # fmt: skip
        return data, lineage

    def _parse(self, key: str, blob: bytes) -> pa.Table:
        try:
            if self.table.format == "parquet":
                return pq.read_table(io.BytesIO(blob))
            options = pacsv.ConvertOptions(column_types=schema_of(self.table), null_values=["NA", ""],
                                           strings_can_be_null=True)  # fmt: skip
            return pacsv.read_csv(io.BytesIO(blob), convert_options=options)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OSError) as exc:
            where = f"{self.store.uri}/{key}"
            raise SourceFormatError(f"{where} is not a readable {self.table.format} file: {exc}") from None
