"""The prediction log: every answered request, losslessly, before its 200 leaves the service.

Two backends, chosen by PLATFORM_PREDICTION_LOG:
- `parquet` (embedded default): one file per request under `predictions/date=YYYY-MM-DD/`, written
  under a temporary name and renamed, so a reader never sees half a request;
- `postgres` (production): table `serving.predictions`, one transaction per request; the feature
  vector is stored as parallel name/value arrays (float8 keeps NaN, which JSON cannot).

Readers get the same DataFrame from both: one row per flight and variant, the features as columns.
"""

from __future__ import annotations

import datetime as dt
import os

import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.settings import Settings

# Columns every row has; whatever else a row carries is the model's feature vector.
FIXED = (
    "request_id", "logged_at", "flight_id", "carrier", "origin", "destination", "scheduled_departure", "variant",
    "assigned_variant", "model_version", "probability", "late", "error", "score_ms", "latency_ms", "caller",
)  # fmt: skip
COLUMNS = ", ".join((*FIXED, "feature_names", "feature_values"))


class ParquetLog:
    def __init__(self, settings: Settings) -> None:
        self.root = settings.data_root / "predictions"

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
    DDL = f"""
        CREATE SCHEMA IF NOT EXISTS serving;
        CREATE TABLE IF NOT EXISTS {TABLE} (
            request_id text NOT NULL, logged_at timestamptz NOT NULL, flight_id text NOT NULL,
            carrier text, origin text, destination text, scheduled_departure timestamp,
            variant text NOT NULL, assigned_variant text NOT NULL, model_version integer NOT NULL,
            probability double precision, late boolean, error text NOT NULL, score_ms double precision,
            latency_ms double precision, caller text, feature_names text[] NOT NULL,
            feature_values double precision[] NOT NULL
        );
        CREATE INDEX IF NOT EXISTS predictions_logged_at ON {TABLE} (logged_at);
    """

    def __init__(self, settings: Settings) -> None:
        from pipelines.security.secrets import postgres_connection

        self.dsn = postgres_connection(settings).dsn()
        self._created = False

    def __str__(self) -> str:
        return f"PostgreSQL table {self.TABLE}"

    def _connect(self):
        import psycopg2

        con = psycopg2.connect(self.dsn)
        if not self._created:
            with con, con.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (self.TABLE,))  # concurrent first writers
                cursor.execute(self.DDL)
            self._created = True
        return con

    def write(self, request_id: str, rows: list[dict]) -> None:
        from psycopg2.extras import execute_values

        now = dt.datetime.now(dt.UTC)
        records = []
        for row in rows:
            features = {k: v for k, v in row.items() if k not in FIXED}
            fixed = {**row, "request_id": request_id, "logged_at": now}
            records.append(tuple(fixed.get(c) for c in FIXED) + (list(features), list(features.values())))
        con = self._connect()
        try:
            with con, con.cursor() as cursor:  # one transaction: the whole request or nothing
                execute_values(
                    cursor,
                    f"INSERT INTO {self.TABLE} ({COLUMNS}) VALUES %s",  # nosec B608 # identifiers are module constants; values are bound
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
                    f"SELECT {COLUMNS} FROM {self.TABLE} WHERE logged_at >= %s ORDER BY logged_at, request_id",  # nosec B608 # identifiers are module constants; values are bound
                    (since or dt.datetime(1970, 1, 1, tzinfo=dt.UTC),),
                )
                rows = cursor.fetchall()
        finally:
            con.close()
        records = [
            {**dict(zip(FIXED, row[: len(FIXED)], strict=True)), **dict(zip(row[-2], row[-1], strict=True))}
            for row in rows
        ]
        return pd.DataFrame.from_records(records)


def _since(frame, since: dt.datetime | None):
    if since is None or frame.empty:
        return frame
    return frame[frame["logged_at"] >= since].reset_index(drop=True)


def prediction_log(settings: Settings) -> ParquetLog | PostgresLog:
    return PostgresLog(settings) if settings.prediction_log == "postgres" else ParquetLog(settings)


def read(settings: Settings, since: dt.datetime | None = None):
    """Every logged prediction (since a time), one row per flight and variant, features as columns."""
    return prediction_log(settings).read(since)
