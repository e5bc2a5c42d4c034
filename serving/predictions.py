"""The prediction log: every answered request, losslessly, before its 200 leaves the service; one log
per use case.

Two backends, chosen by PLATFORM_PREDICTION_LOG:
- `parquet` (embedded default): one file per request under `predictions/<use case>/date=YYYY-MM-DD/`,
  written under a temporary name and renamed, so a reader never sees half a request;
- `postgres` (production): table `serving.predictions`, one transaction per request, a column naming
  the use case; the item's id, local time and answer in columns of their own, its other fields as
  JSON, and the feature vector as parallel name/value arrays (float8 keeps NaN, which JSON cannot).

Readers get the same DataFrame from both, in the use case's own names (for flights: flight_id,
carrier, ..., scheduled_departure, probability, late): one row per item and variant, the features as
columns.
"""

from __future__ import annotations

import datetime as dt
import json
import os

import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.settings import Settings
from pipelines.usecases.spec import UseCase

# Columns every row has besides the use case's own (its item's fields, its answer) and the features.
SERVED = ("request_id", "logged_at", "variant", "assigned_variant", "model_version", "error", "score_ms",
          "latency_ms", "caller")  # fmt: skip


def logged_fields(usecase: UseCase) -> list[str]:
    """The item fields a row keeps: all but personal data (a PII field is used hashed, never logged)."""
    return [name for name, spec in usecase.serving.fields.items() if not spec.pii]


class ParquetLog:
    def __init__(self, settings: Settings, usecase: UseCase) -> None:
        self.root = settings.data_root / "predictions" / usecase.name
        self.entity_id, self.time = usecase.features.entity_id, usecase.serving.time

    def __str__(self) -> str:
        return str(self.root)

    def write(self, request_id: str, rows: list[dict]) -> None:
        now = dt.datetime.now(dt.UTC)
        folder = self.root / f"date={now.date().isoformat()}"
        folder.mkdir(parents=True, exist_ok=True)
        table = pa.Table.from_pylist([{**row, "request_id": request_id, "logged_at": now} for row in rows])
        temp = folder / f".{request_id}.parquet.tmp"
        pq.write_table(table, temp)
        os.replace(temp, folder / f"{request_id}.parquet")

    def delete(self, entity_ids: list[str]) -> int:
        """Remove the rows of these items (an erasure): each file holding one is rewritten without them; how many."""
        import pyarrow.compute as pc

        column, removed, wanted = self.entity_id, 0, pa.array(sorted(set(entity_ids)))
        for path in sorted(self.root.glob("date=*/*.parquet")):
            table = pq.read_table(path)
            hit = pc.is_in(pc.cast(table[column], pa.string()), value_set=wanted)
            count = pc.sum(hit).as_py() or 0
            if not count:
                continue
            temp = path.with_name(f".{path.name}.tmp")
            pq.write_table(table.filter(pc.invert(hit)), temp)
            os.replace(temp, path)
            removed += count
        return removed

    def delete_before(self, day: dt.date) -> int:
        """Remove the answers to items whose local time is before `day` (retention); how many."""
        import pyarrow.compute as pc

        removed, bound = 0, pa.scalar(dt.datetime.combine(day, dt.time()), pa.timestamp("us"))
        for path in sorted(self.root.glob("date=*/*.parquet")):
            table = pq.read_table(path)
            old = pc.fill_null(pc.less(pc.cast(table[self.time], pa.timestamp("us")), bound), False)
            count = pc.sum(old).as_py() or 0
            if count == table.num_rows:
                path.unlink()
            elif count:
                temp = path.with_name(f".{path.name}.tmp")
                pq.write_table(table.filter(pc.invert(old)), temp)
                os.replace(temp, path)
            removed += count
        return removed

    def read(self, since: dt.datetime | None = None):
        import pandas as pd

        folders = sorted(self.root.glob("date=*"))
        if since is not None:
            folders = [f for f in folders if f.name.removeprefix("date=") >= since.date().isoformat()]
        files = [f for folder in folders for f in sorted(folder.glob("*.parquet"))]
        if since is not None:  # a file is written once, after its rows' logged_at: older files cannot qualify
            files = [f for f in files if f.stat().st_mtime >= since.timestamp()]
        frame = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True) if files else pd.DataFrame()
        return _since(frame, since)


class PostgresLog:
    TABLE = "serving.predictions"
    COLUMNS = ("request_id", "logged_at", "usecase", "entity_id", "request_time", "variant", "assigned_variant",
               "model_version", "prediction", "decision", "decided_by", "error", "score_ms", "latency_ms", "caller",
               "fields", "feature_names", "feature_values")  # fmt: skip
    DDL = f"""
        CREATE SCHEMA IF NOT EXISTS serving;
        CREATE TABLE IF NOT EXISTS {TABLE} (
            request_id text NOT NULL, logged_at timestamptz NOT NULL, usecase text NOT NULL,
            entity_id text NOT NULL, request_time timestamp, variant text NOT NULL,
            assigned_variant text NOT NULL, model_version integer, prediction double precision,
            decision boolean, decided_by text, error text NOT NULL, score_ms double precision,
            latency_ms double precision, caller text, fields jsonb NOT NULL, feature_names text[] NOT NULL,
            feature_values double precision[] NOT NULL
        );
        CREATE INDEX IF NOT EXISTS predictions_usecase_logged_at ON {TABLE} (usecase, logged_at);
        -- Tables made before objections: a human_review answer has no model version, and says who decided.
        ALTER TABLE {TABLE} ALTER COLUMN model_version DROP NOT NULL;
        ALTER TABLE {TABLE} ADD COLUMN IF NOT EXISTS decided_by text;
    """

    def __init__(self, settings: Settings, usecase: UseCase) -> None:
        from pipelines.security.secrets import postgres_connection

        self.dsn = postgres_connection(settings).dsn()
        self.usecase = usecase
        self._created = False

    def __str__(self) -> str:
        return f"PostgreSQL table {self.TABLE} ({self.usecase.name})"

    def _connect(self):
        import psycopg2

        con = psycopg2.connect(self.dsn)
        if not self._created:
            with con, con.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (self.TABLE,))  # concurrent first writers
                cursor.execute(self.DDL)
            self._created = True
        return con

    def _names(self) -> dict[str, str | None]:
        """The generic column of each of the use case's own names, and of the answer's `decision` (model or
        human_review: who decided; the generic `decision` column holds the use case's own decision)."""
        u = self.usecase
        return {"entity_id": u.features.entity_id, "request_time": u.serving.time, "prediction": u.prediction_column,
                "decision": u.serving.decision, "decided_by": "decision"}  # fmt: skip

    def delete(self, entity_ids: list[str]) -> int:
        """Remove the rows of these items (an erasure); how many."""
        con = self._connect()
        try:
            with con, con.cursor() as cursor:
                cursor.execute(f"DELETE FROM {self.TABLE} WHERE usecase = %s AND entity_id = ANY(%s)",  # nosec B608 # a class constant; values are bound
                               (self.usecase.name, sorted(set(entity_ids))))  # fmt: skip
                return cursor.rowcount
        finally:
            con.close()

    def delete_before(self, day: dt.date) -> int:
        """Remove the answers to items whose local time is before `day` (retention); how many."""
        con = self._connect()
        try:
            with con, con.cursor() as cursor:
                cursor.execute(f"DELETE FROM {self.TABLE} WHERE usecase = %s AND request_time < %s",  # nosec B608 # a class constant; values are bound
                               (self.usecase.name, dt.datetime.combine(day, dt.time())))  # fmt: skip
                return cursor.rowcount
        finally:
            con.close()

    def write(self, request_id: str, rows: list[dict]) -> None:
        from psycopg2.extras import execute_values

        now = dt.datetime.now(dt.UTC)
        names, fields = self._names(), logged_fields(self.usecase)
        own = {*names.values(), *fields}
        records = []
        for row in rows:
            features = {k: float(row[k]) for k in row if k not in SERVED and k not in own}
            item = {k: row[k] for k in fields if k not in names.values()}
            values = {
                **{k: row.get(k) for k in SERVED}, "request_id": request_id, "logged_at": now,
                "usecase": self.usecase.name, "fields": json.dumps(item, default=str),
                **{generic: row.get(name) if name else None for generic, name in names.items()},
            }  # fmt: skip
            values["entity_id"] = str(values["entity_id"])
            record = [values[c] for c in self.COLUMNS[:-2]] + [list(features), list(features.values())]
            records.append(tuple(record))
        con = self._connect()
        try:
            with con, con.cursor() as cursor:  # one transaction: the whole request or nothing
                execute_values(
                    cursor,
                    f"INSERT INTO {self.TABLE} ({', '.join(self.COLUMNS)}) VALUES %s",  # nosec B608 # identifiers are class constants; values are bound
                    records,
                )
        finally:
            con.close()

    def read(self, since: dt.datetime | None = None):
        import pandas as pd

        con = self._connect()
        try:
            with con.cursor() as cursor:
                cursor.execute(
                    f"SELECT {', '.join(self.COLUMNS)} FROM {self.TABLE} WHERE usecase = %s AND logged_at >= %s "  # nosec B608 # identifiers are class constants; values are bound
                    "ORDER BY logged_at, request_id",
                    (self.usecase.name, since or dt.datetime(1970, 1, 1, tzinfo=dt.UTC)),
                )
                rows = cursor.fetchall()
        finally:
            con.close()
        names = self._names()
        records = []
        for row in rows:
            values = dict(zip(self.COLUMNS, row, strict=True))
            record = {k: values[k] for k in SERVED}
            record.update({name: values[generic] for generic, name in names.items() if name})
            record.update(values["fields"] if isinstance(values["fields"], dict) else json.loads(values["fields"]))
            record.update(zip(values["feature_names"], values["feature_values"], strict=True))
            records.append(record)
        return pd.DataFrame.from_records(records)


def _since(frame, since: dt.datetime | None):
    if since is None or frame.empty:
        return frame
    return frame[frame["logged_at"] >= since].reset_index(drop=True)


def prediction_log(settings: Settings, usecase: UseCase) -> ParquetLog | PostgresLog:
    return PostgresLog(settings, usecase) if settings.prediction_log == "postgres" else ParquetLog(settings, usecase)


def read(settings: Settings, usecase: UseCase, since: dt.datetime | None = None):
    """Every logged prediction of the use case (since a time), one row per item and variant, features as columns."""
    return prediction_log(settings, usecase).read(since)
