"""Batch and stream agree: the values the stream processor wrote for a day against the dbt marts that the
daily batch builds from the landed data.

For each stream of the spec, the rows of its feature view stamped within the local day ([00:00, next
00:00) in the use case's zone) are compared key by key, column by column: a row only one side has, or a
value that differs, fails loudly, naming keys and both values. A row stamped in the day comes from the
day's own partition or an earlier one (a flight of the evening before landing after midnight), never a
later one, so the comparison is complete once the batch has built the day (`batch_built`) and the stream
has passed its end, and it never meets the next day's rows that only one side has yet. It covers what the
stream saw: from its first event (and, for a window, that window's length later) up to its newest. A day
the stream processor did not see at all is reported as such, not as agreement.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field

from pipelines.errors import NothingToDo, PlatformError, StreamBatchMismatch
from pipelines.settings import Settings
from pipelines.usecases.spec import UseCase

MAX_NAMED = 10  # differences named in the message; the report holds them all


@dataclass
class StreamReconciliation:
    stream: str
    view: str
    batch_rows: int
    stream_rows: int
    watermark: str | None = None  # compared up to this instant: the newest the stream had written
    only_batch: list[dict] = field(default_factory=list)
    only_stream: list[dict] = field(default_factory=list)
    differing: list[dict] = field(default_factory=list)

    @property
    def agrees(self) -> bool:
        return not (self.only_batch or self.only_stream or self.differing)

    def describe(self) -> str:
        if self.stream_rows == 0:
            return f"{self.stream} -> {self.view}: no stream rows (the processor did not see the day)"
        if self.agrees:
            return f"{self.stream} -> {self.view}: {self.stream_rows} rows up to {self.watermark}, equal to the batch's"
        named = [f"missing from the stream: {r}" for r in self.only_batch[:MAX_NAMED]]
        named += [f"not in the batch: {r}" for r in self.only_stream[:MAX_NAMED]]
        named += [
            f"{d['key']} {d['column']}: stream {d['stream']!r}, batch {d['batch']!r}"
            for d in self.differing[:MAX_NAMED]
        ]
        return (f"{self.stream} -> {self.view}: {len(self.only_batch)} rows missing from the stream, "
                f"{len(self.only_stream)} not in the batch, {len(self.differing)} values differ:\n    "
                + "\n    ".join(named))  # fmt: skip


def reconcile_day(
    settings: Settings, usecase: UseCase, day: dt.date, tolerance: float = 1e-9
) -> list[StreamReconciliation]:
    """Compare each stream's rows of `day` with the batch mart; StreamBatchMismatch when any disagree, NothingToDo
    when the stream wrote nothing for the day."""
    import pandas as pd

    from pipelines.features.store import feature_store, query_warehouse
    from pipelines.features.transform import MARTS_SCHEMA
    from pipelines.streaming.sink import sink_engine, view_sink

    if usecase.streaming is None:
        raise PlatformError(f"use case {usecase.name} declares no streams (its spec's `streaming` section)")
    engine, store = sink_engine(settings, usecase.name), feature_store(settings)
    day_start = dt.datetime.combine(day, dt.time(), usecase.tz).astimezone(dt.UTC)
    day_end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), usecase.tz).astimezone(dt.UTC)
    results = []
    for name, stream in usecase.streaming.streams.items():
        view = store.get_feature_view(stream.feature_view)
        sink = view_sink(engine, view, usecase.sources.tables[stream.table], stream)
        keys, ts, columns = sink.keys, sink.timestamp, sink.columns
        # Up to the stream's watermark: the day's last hours may not be due yet while its batch runs (a served
        # day's stream stops two hours before its end at a two-hour lead).
        oldest, newest = sink.oldest(), sink.newest()
        if newest is None or newest < day_start or oldest >= day_end:
            results.append(StreamReconciliation(name, view.name, 0, 0, watermark=None))
            continue
        start, end = max(day_start, oldest), min(day_end, newest + dt.timedelta(microseconds=1))
        if stream.window:  # from the first instant whose whole window the stream saw
            start = max(start, oldest + stream.window.length)
            streamed = window_rows(sink.rows(start - stream.window.length, end), keys, ts, stream.window, start)
            columns = [*keys, *stream.window.columns]
        else:
            streamed = sink.rows(start, end)
        query = (f"SELECT {', '.join([*columns, ts])} FROM {MARTS_SCHEMA}.{view.name} "  # nosec B608 # identifiers from the validated spec and Feast; times from datetimes
                 f"WHERE {ts} >= '{start.isoformat()}' AND {ts} < '{end.isoformat()}'")  # fmt: skip
        batch = query_warehouse(settings, query)
        batch[ts] = pd.to_datetime(batch[ts], utc=True)
        result = StreamReconciliation(name, view.name, len(batch), len(streamed), watermark=end.isoformat())
        if not streamed.empty:
            _compare(result, batch, streamed, [*keys, ts], [c for c in columns if c not in keys], tolerance)
        results.append(result)
    if not any(r.stream_rows for r in results):
        raise NothingToDo(
            f"{usecase.name} {day}: no stream rows to reconcile (the stream processor did not see the day)"
        )
    broken = [r for r in results if r.stream_rows and not r.agrees]
    if broken:
        raise StreamBatchMismatch(
            f"{usecase.name} {day}: the stream and the batch disagree\n  " + "\n  ".join(r.describe() for r in broken)
        )
    return results


def batch_built(settings: Settings, usecase: UseCase, day: dt.date) -> bool:
    """Whether the batch has built `day`: its entity mart holds the day's rows (dbt builds every mart of the day
    in one invocation, after the day's validated load)."""
    from pipelines.features.store import query_warehouse
    from pipelines.features.transform import MARTS_SCHEMA

    features = usecase.features
    if settings.warehouse_target == "duckdb" and not settings.warehouse_path.exists():
        return False
    exists = (f"SELECT count(*) AS n FROM information_schema.tables WHERE table_schema = '{MARTS_SCHEMA}' "  # nosec B608 # names from the validated spec
              f"AND table_name = '{features.entity_mart}'")  # fmt: skip
    if not int(query_warehouse(settings, exists)["n"].iloc[0]):
        return False
    rows = (f"SELECT count(*) AS n FROM {MARTS_SCHEMA}.{features.entity_mart} "  # nosec B608 # identifiers from the validated spec; a date
            f"WHERE {features.day} = DATE '{day.isoformat()}'")  # fmt: skip
    return int(query_warehouse(settings, rows)["n"].iloc[0]) > 0


def window_rows(events, keys: list[str], ts: str, window, start: dt.datetime):
    """The view's rows a windowed stream wrote, recomputed from its stored events: at each event time t at or
    after `start`, per key, the count and means of the key's events in [t - length, t]."""
    import pandas as pd

    out = []
    for key, group in events.groupby(keys, sort=False) if not events.empty else []:
        group = group.sort_values(ts)
        stamps = group[ts].tolist()
        for t in sorted({s for s in stamps if s >= start}):
            inside = group[(group[ts] >= t - window.length) & (group[ts] <= t)]
            row = {**dict(zip(keys, key if isinstance(key, tuple) else (key,), strict=True)), ts: t}
            if window.count:
                row[window.count] = len(inside)
            row.update({name: inside[col].mean() for name, col in window.means.items()})
            out.append(row)
    return pd.DataFrame(out, columns=[*keys, ts, *window.columns])


def _compare(result: StreamReconciliation, batch, streamed, keys: list[str], values: list[str], tolerance: float):
    def keyed(frame):
        return {tuple(_plain(row[k]) for k in keys): row for row in frame.to_dict("records")}

    b, s = keyed(batch), keyed(streamed)
    result.only_batch = [dict(zip(keys, k, strict=True)) for k in sorted(set(b) - set(s), key=str)]
    result.only_stream = [dict(zip(keys, k, strict=True)) for k in sorted(set(s) - set(b), key=str)]
    for key in sorted(set(b) & set(s), key=str):
        for column in values:
            left, right = _plain(s[key][column]), _plain(b[key][column])
            if not _equal(left, right, tolerance):
                result.differing.append({"key": dict(zip(keys, key, strict=True)), "column": column,
                                         "stream": left, "batch": right})  # fmt: skip


def _plain(value):
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value.item() if hasattr(value, "item") else value


def _equal(a, b, tolerance: float) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, int | float) and isinstance(b, int | float):
        return abs(a - b) <= tolerance * max(1.0, abs(b))
    return a == b
