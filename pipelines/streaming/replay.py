"""The stand-in for the operational systems: a use case's source rows published as events, in event-time
order, at N times real time (`platform stream replay <usecase> --from ... --to ... --speed N`).

Each stream of the spec's `streaming` section publishes the rows of its table whose event time (the
time column plus the stream's offset: an hour's weather at the hour's end) falls in [start, end).
Events of the same instant go out together; between instants the replayer sleeps for the event-time
gap divided by the speed (speed 0: as fast as the broker takes them).
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from pipelines.errors import EmptyPartitionError, MissingPartitionError, PlatformError
from pipelines.ingest.sources import extract_day
from pipelines.ingest.sources.typed import schema_of
from pipelines.settings import Settings
from pipelines.streaming.broker import RedisStreams, stream_key
from pipelines.streaming.events import event_id, timing, to_json
from pipelines.usecases.spec import UseCase


@dataclass(frozen=True)
class Event:
    time: dt.datetime  # when it is known and published (UTC)
    stream: str
    id: str
    data: dict  # the row's columns, JSON-typed


@dataclass
class ReplayReport:
    usecase: str
    start: str
    end: str
    speed: float
    published: dict[str, int]
    seconds: float

    def render(self) -> str:
        counts = ", ".join(f"{name} {n}" for name, n in self.published.items())
        pace = "as fast as possible" if self.speed == 0 else f"{self.speed:g}x real time"
        return f"published {counts} events of {self.start} .. {self.end} ({pace}) in {self.seconds:.1f} s"


def stream_events(
    settings: Settings, usecase: UseCase, start: dt.datetime, end: dt.datetime, streams: list[str] | None = None
) -> list[Event]:
    """The events known in [start, end) (aware datetimes), of every stream or of `streams`, in time order."""
    if usecase.streaming is None:
        raise PlatformError(f"use case {usecase.name} declares no streams (its spec's `streaming` section)")
    if start.tzinfo is None or end.tzinfo is None or not start < end:
        raise PlatformError(f"replay needs a time range with start before end, both with a time zone ({start}, {end})")
    chosen = usecase.streaming.streams
    unknown = sorted(set(streams or []) - set(chosen))
    if unknown:
        raise PlatformError(f"{usecase.name} has no streams {unknown}; its streams: {sorted(chosen)}")
    events = []
    for name, stream in chosen.items():
        if streams and name not in streams:
            continue
        data = _days_around(settings, usecase, stream.table, start, end)
        clock = timing(settings, usecase, stream)
        times = clock.of(data)
        low, high = pa.scalar(start.astimezone(dt.UTC), times.type), pa.scalar(end.astimezone(dt.UTC), times.type)
        rows = data.filter(pc.and_(pc.greater_equal(times, low), pc.less(times, high))).to_pylist()  # null: no event
        carried = stream.carried
        events += [Event(clock.at(row), name, event_id(name, stream, row), to_json(row, carried))
                   for row in rows]  # fmt: skip
    return sorted(events, key=lambda e: (e.time, e.stream, e.id))


def _days_around(settings: Settings, usecase: UseCase, table: str, start: dt.datetime, end: dt.datetime) -> pa.Table:
    """The rows of `table` whose days can hold an event of [start, end): an event is known at most a day after its
    row's day ends (a flight landing the next morning) and never before that day starts."""
    tz, parts = usecase.tz, []
    day, last = start.astimezone(tz).date() - dt.timedelta(days=1), end.astimezone(tz).date()
    while day <= last:
        try:
            parts.append(extract_day(settings, usecase, table, day).rows)
        except (MissingPartitionError, EmptyPartitionError):  # outside what the source covers
            pass
        day += dt.timedelta(days=1)
    return pa.concat_tables(parts) if parts else schema_of(usecase.sources.tables[table]).empty_table()


def replay_events(
    settings: Settings,
    usecase: UseCase,
    start: dt.datetime,
    end: dt.datetime,
    speed: float,
    streams: list[str] | None = None,
    stop: threading.Event | None = None,
) -> ReplayReport:
    """Publish the events of [start, end) at `speed` times real time (0: no waiting); returns the counts."""
    if speed < 0:
        raise PlatformError(f"speed {speed} must be 0 (as fast as possible) or more (times real time)")
    events = stream_events(settings, usecase, start, end, streams)
    broker = RedisStreams(settings.stream_broker_url)
    published = {name: 0 for name in usecase.streaming.streams if not streams or name in streams}
    began = time.monotonic()
    i = 0
    while i < len(events) and not (stop and stop.is_set()):
        instant = events[i].time
        j = i
        while j < len(events) and events[j].time == instant:
            j += 1
        if speed:
            wait = (instant - start).total_seconds() / speed - (time.monotonic() - began)
            if wait > 0 and (stop.wait(wait) if stop else time.sleep(wait)):
                break
        now = time.time()
        for name in published:
            batch = [(e.id, e.time.isoformat(), e.data) for e in events[i:j] if e.stream == name]
            if batch:
                published[name] += broker.publish(stream_key(settings, usecase.name, name), batch, now)
        i = j
    return ReplayReport(usecase.name, start.isoformat(), end.isoformat(), speed, published, time.monotonic() - began)


class EventClock:
    """The operational systems' time, moved forward by whoever replays consumer traffic: `advance(instant)`
    publishes every event known by `instant` that was not published yet, then waits until the stream
    processor has acknowledged all of them, so that a request asked at `instant` reads what was known then.
    It starts the streams' longest window before `start`, so a windowed value at `start` is whole."""

    def __init__(self, settings: Settings, usecase: UseCase, start: dt.datetime, timeout_s: float = 120):
        from pipelines.streaming.processor import GROUP

        # A windowed stream's value at `start` depends on the events of its window before it: replayed too.
        self.now = start - usecase.streaming.lookback
        self.settings, self.usecase, self.timeout_s, self.group = settings, usecase, timeout_s, GROUP
        self.broker = RedisStreams(settings.stream_broker_url)
        self.published: dict[str, int] = dict.fromkeys(usecase.streaming.streams, 0)
        self.waited_s = 0.0

    def advance(self, instant: dt.datetime) -> None:
        after = instant + dt.timedelta(microseconds=1)  # events known at the instant itself count
        if after <= self.now:
            return
        report = replay_events(self.settings, self.usecase, self.now, after, 0)
        self.now = after
        for name, count in report.published.items():
            self.published[name] += count
        if not any(report.published.values()):
            return
        started, keys = time.monotonic(), [stream_key(self.settings, self.usecase.name, n) for n in self.published]
        while any(self.broker.lag(key, self.group) for key in keys):
            if time.monotonic() - started > self.timeout_s:
                raise PlatformError(
                    f"the stream processor of {self.usecase.name} has not caught up with {instant.isoformat()} in "
                    f"{self.timeout_s:.0f} s (lag {[self.broker.lag(k, self.group) for k in keys]}); is it running?"
                )
            time.sleep(0.005)
        self.waited_s += time.monotonic() - started
