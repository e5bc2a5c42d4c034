"""The offline side of the stream: every feature row the processor wrote, once, keyed by its event.

A table per feature view (named after it), in SQLite under the data root locally, or in the
PostgreSQL schema `streaming` with the production warehouse: the event id is the primary key, so a
redelivered or duplicated event inserts nothing. The daily reconciliation compares these rows
with the dbt mart the batch builds for the same day (pipelines/streaming/reconcile.py), and the
processor asks it which rows are the newest of their key before it writes the online store.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import sqlalchemy as sa

from pipelines.settings import Settings

SCHEMA = "streaming"
TYPES = {"int8": sa.BigInteger, "int16": sa.BigInteger, "int32": sa.BigInteger, "int64": sa.BigInteger,
         "float64": sa.Float(precision=53), "string": sa.Text}  # fmt: skip


@dataclass(frozen=True)
class Written:
    new: list[dict]  # rows of the batch not seen before
    newest: list[dict]  # rows of the batch (new or redelivered) that are the newest of their key
    keys: list[tuple]  # the keys the batch touched


def sink_engine(settings: Settings, usecase: str) -> sa.Engine:
    if settings.warehouse_target == "postgres":
        from pipelines.security.secrets import postgres_connection

        engine = sa.create_engine(postgres_connection(settings).sqlalchemy_url("psycopg2"))
        with engine.begin() as con:
            con.execute(sa.text(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}"))
        return engine
    folder = settings.data_root / "streaming"
    folder.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(f"sqlite:///{folder / f'{usecase}.sqlite'}")

    @sa.event.listens_for(engine, "connect")
    def _wal(connection, _record):  # readers (reconciliation, tests) never block the processor
        connection.execute("PRAGMA journal_mode=WAL")

    return engine


def streamed_since(settings: Settings, usecase, instant: dt.datetime) -> frozenset[str]:
    """The use case's feature views whose stream has written a row at or after `instant` (cheap: no Feast)."""
    if usecase.streaming is None:
        return frozenset()
    engine, found = sink_engine(settings, usecase.name), set()
    tables = set(sa.inspect(engine).get_table_names(schema=SCHEMA if engine.dialect.name == "postgresql" else None))
    for stream in usecase.streaming.streams.values():
        if stream.feature_view in tables:
            table = sa.Table(stream.feature_view, sa.MetaData(), autoload_with=engine,
                             schema=SCHEMA if engine.dialect.name == "postgresql" else None)  # fmt: skip
            stamp = next(c for c in table.columns if isinstance(c.type, sa.DateTime) and c.name != "processed_at")
            with engine.connect() as con:
                newest = _utc(con.execute(sa.select(sa.func.max(stamp))).scalar_one())
            if newest is not None and newest >= instant:
                found.add(stream.feature_view)
    return frozenset(found)


def view_sink(engine: sa.Engine, view, table, stream) -> StreamSink:
    """The sink of Feast feature view `view`, fed by `stream` with the rows of source table `table`: the view's
    rows, or, for a stream with a window, the events the window aggregates (join keys and averaged columns)."""
    sources = dict(stream.features)
    if stream.window:
        sources.update({col: col for col in stream.window.means.values()})
    columns = {name: table.columns[col] for name, col in sources.items()}
    keys = [c.name for c in view.entity_columns]
    return StreamSink(engine, view.name, keys, columns, view.batch_source.timestamp_field, sources)


class StreamSink:
    """The stream rows of one feature view: `keys` its join keys, `columns` every stored column with its
    source type, `timestamp` the view's timestamp column."""

    def __init__(self, engine: sa.Engine, view: str, keys: list[str], columns: dict[str, str], timestamp: str,
                 sources: dict[str, str] | None = None):  # fmt: skip
        self.engine, self.keys, self.columns, self.timestamp = engine, keys, columns, timestamp
        self.sources = sources or {c: c for c in columns}  # stored column <- event column
        schema = SCHEMA if engine.dialect.name == "postgresql" else None
        self.table = sa.Table(
            view,
            sa.MetaData(schema=schema),
            sa.Column("event_id", sa.Text, primary_key=True),
            sa.Column(timestamp, sa.DateTime(timezone=True), nullable=False, index=True),
            *(sa.Column(name, TYPES[kind]) for name, kind in columns.items()),
            sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False),
        )
        self.table.metadata.create_all(engine)

    def write(self, rows: list[dict]) -> Written:
        """Insert the rows whose event_id is new, in one transaction; say which are new and which are newest."""
        if not rows:
            return Written([], [], [])
        t = self.table
        ids = [r["event_id"] for r in rows]
        with self.engine.begin() as con:
            seen = {i for (i,) in con.execute(sa.select(t.c.event_id).where(t.c.event_id.in_(ids)))}
            new = [r for r in rows if r["event_id"] not in seen]
            new = list({r["event_id"]: r for r in new}.values())  # a batch may hold the same event twice
            if new:
                now = dt.datetime.now(dt.UTC)
                con.execute(self._insert(), [{**r, "processed_at": now} for r in new])
            newest, keys = [], sorted({tuple(r[k] for k in self.keys) for r in rows}, key=str)
            for key in keys:
                match = sa.and_(*(t.c[k] == v for k, v in zip(self.keys, key, strict=True)))
                latest = con.execute(sa.select(sa.func.max(t.c[self.timestamp])).where(match)).scalar_one()
                mine = [r for r in rows if tuple(r[k] for k in self.keys) == key and _same(r[self.timestamp], latest)]
                newest += mine[:1]
        return Written(new, newest, keys)

    def windows(self, keys: list[tuple], window) -> list[dict]:
        """For each key, the window's aggregates as of its newest stored event t, over [t - length, t]: the
        view's row at t. Computed from the stored events, so a redelivered, duplicated or late event counts
        once and in its place."""
        t, rows = self.table, []
        with self.engine.connect() as con:
            for key in keys:
                match = sa.and_(*(t.c[k] == v for k, v in zip(self.keys, key, strict=True)))
                newest = _utc(con.execute(sa.select(sa.func.max(t.c[self.timestamp])).where(match)).scalar_one())
                if newest is None:
                    continue
                inside = sa.and_(match, t.c[self.timestamp] >= newest - window.length, t.c[self.timestamp] <= newest)
                aggregates = [sa.func.count().label("__count"),
                              *(sa.func.avg(t.c[col]).label(name) for name, col in window.means.items())]  # fmt: skip
                found = con.execute(sa.select(*aggregates).where(inside)).mappings().one()
                row = {**dict(zip(self.keys, key, strict=True)), self.timestamp: newest}
                if window.count:
                    row[window.count] = int(found["__count"])
                row.update({name: None if found[name] is None else float(found[name]) for name in window.means})
                rows.append(row)
        return rows

    def _insert(self):
        if self.engine.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        return insert(self.table).on_conflict_do_nothing(index_elements=["event_id"])

    def rows(self, start: dt.datetime | None = None, end: dt.datetime | None = None):
        """The stored rows with `start <= timestamp < end`, as a DataFrame (UTC timestamps)."""
        import pandas as pd

        t, query = self.table, sa.select(self.table)
        if start is not None:
            query = query.where(t.c[self.timestamp] >= start)
        if end is not None:
            query = query.where(t.c[self.timestamp] < end)
        with self.engine.connect() as con:
            frame = pd.DataFrame(con.execute(query.order_by(t.c[self.timestamp], t.c.event_id)).mappings().all())
        if frame.empty:
            return pd.DataFrame(columns=[c.name for c in t.columns])
        for column in (self.timestamp, "processed_at"):
            frame[column] = pd.to_datetime(frame[column], utc=True)
        return frame

    def count(self) -> int:
        with self.engine.connect() as con:
            return con.execute(sa.select(sa.func.count()).select_from(self.table)).scalar_one()

    def oldest(self) -> dt.datetime | None:
        """The oldest timestamp the stream has written, or None."""
        with self.engine.connect() as con:
            return _utc(con.execute(sa.select(sa.func.min(self.table.c[self.timestamp]))).scalar_one())

    def newest(self) -> dt.datetime | None:
        """The newest timestamp the stream has written, or None."""
        with self.engine.connect() as con:
            value = con.execute(sa.select(sa.func.max(self.table.c[self.timestamp]))).scalar_one()
        return _utc(value)


def _utc(value):
    if value is None:
        return None
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _same(a: dt.datetime, b) -> bool:
    return b is not None and _utc(a) == _utc(b)
