"""The stream processor: a long-running service that turns a use case's events into feature rows, in the
Feast online store (what serving reads) and in the offline stream sink (what reconciliation checks).

For every stream of the spec it reads with a consumer group and acknowledges explicitly, after the
writes. Every event is checked against its table's contract (pipelines/streaming/events.py); a bad
one goes to the dead-letter stream with its reason and is counted, never written and never dropped
silently. Effectively exactly once: the sink's primary key is the event's own id, so a redelivered
or republished event inserts nothing; the online store is written only with the newest row of each
key, so an old event replayed late never overwrites a newer value; and after a crash the consumer's
unacknowledged events are read again first, their rows rewritten unchanged.

Once every stream has written an event at or after the end of a local day (the use case's time zone),
the day is complete on the stream side: the processor appends it to the use case's `days` stream, each
day once and in order (the newest entry there is where it resumes after a restart). Airflow's asset
watcher reads it and runs the day's reconciliation (pipelines/orchestration/stream_days.py). The events
are taken to arrive in event-time order per stream, as the replayer publishes them.

`/healthz` answers what it has done (JSON), `/metrics` the same as Prometheus metrics.
"""

from __future__ import annotations

import datetime as dt
import http.server
import json
import logging
import math
import threading
import time
from dataclasses import dataclass, field

from pipelines.errors import SettingsError
from pipelines.settings import Settings
from pipelines.streaming.broker import Message, RedisStreams, days_key, dead_letter_key, stream_key
from pipelines.streaming.events import Contract, EventRejected, Timing, event_id, timing
from pipelines.streaming.sink import StreamSink, sink_engine, view_sink
from pipelines.usecases.spec import UseCase
from pipelines.usecases.streaming import Stream

log = logging.getLogger(__name__)
GROUP = "feature-writers"


@dataclass
class StreamState:
    """One stream as the processor runs it."""

    name: str
    spec: Stream
    key: str
    dead_key: str
    contract: Contract
    timing: Timing
    sink: StreamSink
    counts: dict[str, int] = field(default_factory=lambda: {"processed": 0, "duplicates": 0, "dead_lettered": 0})
    oldest: dt.datetime | None = None  # the oldest and newest event times the stream has written
    newest: dt.datetime | None = None


class StreamProcessor:
    """Consumes every stream of `usecase` as `consumer` of the group `feature-writers`."""

    def __init__(self, settings: Settings, usecase: UseCase, consumer: str = "processor-1", batch: int = 500):
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        from pipelines.features.store import apply_definitions, feature_store

        if usecase.streaming is None:
            raise SettingsError(f"use case {usecase.name} declares no streams (its spec's `streaming` section)")
        self.settings, self.usecase, self.consumer, self.batch = settings, usecase, consumer, batch
        self.broker = RedisStreams(settings.stream_broker_url)
        apply_definitions(settings)  # a new platform's registry has no views yet; unchanged ones stay as they are
        self.store = feature_store(settings)
        engine = sink_engine(settings, usecase.name)
        self.streams = [self._state(name, s, engine) for name, s in usecase.streaming.streams.items()]
        for state in self.streams:
            self.broker.ensure_group(state.key, GROUP)
        self.days_key = days_key(settings, usecase.name)
        announced = self.broker.last(self.days_key)
        self.announced = dt.date.fromisoformat(announced["day"]) if announced else None
        self.registry = CollectorRegistry()
        labels = ["usecase", "stream"]
        self.events = Counter("platform_stream_events", "Events handled, by outcome", [*labels, "outcome"],
                              registry=self.registry)  # fmt: skip
        self.delivery = Histogram("platform_stream_delivery_seconds", "Published to written to the online store",
                                  labels, registry=self.registry,
                                  buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))  # fmt: skip
        self.pending = Gauge("platform_stream_lag_events", "Events not acknowledged yet", labels,
                             registry=self.registry)  # fmt: skip
        self.started = time.time()

    def _state(self, name: str, stream: Stream, engine) -> StreamState:
        view = self.store.get_feature_view(stream.feature_view)
        keys = [c.name for c in view.entity_columns]
        wanted = keys + [f.name for f in view.features]
        given = [*stream.features, *(stream.window.columns if stream.window else [])]
        missing = [c for c in wanted if c not in given]
        if missing:
            raise SettingsError(
                f"{self.usecase.name}: streaming.streams.{name}.features gives no value for {missing} of feature view "
                f"{view.name}; map each of its join keys and features to an event column"
            )
        if stream.window and view.ttl != stream.window.length:
            raise SettingsError(
                f"{self.usecase.name}: feature view {view.name} has a ttl of {view.ttl}, but its stream {name} keeps "
                f"a window of {stream.window.length}: give the view ttl={stream.window.length!r} (a window's value is "
                "current for as long as the window, then its events are all gone)"
            )
        table = self.usecase.sources.tables[stream.table]
        sink = view_sink(engine, view, table, stream)
        return StreamState(name, stream, stream_key(self.settings, self.usecase.name, name),
                           dead_letter_key(self.settings, self.usecase.name, name),
                           Contract.of(table, stream), timing(self.settings, self.usecase, stream), sink,
                           oldest=sink.oldest(), newest=sink.newest())  # fmt: skip

    def run(self, stop: threading.Event, block_ms: int = 200) -> None:
        """Process until `stop` is set: first what this consumer read and never acknowledged, then new events."""
        states = {state.key: state for state in self.streams}
        while found := self.broker.read(list(states), GROUP, self.consumer, self.batch, 0, pending=True):
            for key, messages in found.items():
                self.handle(states[key], messages)
        while not stop.is_set():
            # One read of every stream: it returns as soon as any of them has events (waiting on each in turn
            # would hold an event of one stream for the others' timeouts).
            for key, messages in self.broker.read(list(states), GROUP, self.consumer, self.batch, block_ms,
                                                  pending=False).items():  # fmt: skip
                self.handle(states[key], messages)
            self.announce_complete_days()
            for state in self.streams:
                self.pending.labels(self.usecase.name, state.name).set(self.broker.lag(state.key, GROUP))

    def handle(self, state: StreamState, messages: list[Message]) -> None:
        """Check, write (sink, then the online store) and acknowledge one batch of messages of a stream."""
        rows, accepted = [], []
        for message in messages:
            try:
                data = state.contract.check(message.data)
                known_at = state.timing.at(data)
                if known_at is None:
                    spec = state.spec.event_time
                    unplaced = f", or its {spec.zone.column} has no time zone" if spec.zone else ""
                    raise EventRejected(f"no event time: one of {spec.columns} is null{unplaced}")
            except EventRejected as exc:
                self.broker.dead_letter(state.key, state.dead_key, GROUP, message, str(exc))
                state.counts["dead_lettered"] += 1
                self.events.labels(self.usecase.name, state.name, "dead_lettered").inc()
                log.warning("dead-lettered %s %s: %s", state.name, message.id, exc)
                continue
            row = {column: data[source] for column, source in state.sink.sources.items()}
            row["event_id"] = event_id(state.name, state.spec, data)
            row[state.sink.timestamp] = known_at
            rows.append(row)
            accepted.append(message)
        written = state.sink.write(rows)
        online = state.sink.windows(written.keys, state.spec.window) if state.spec.window else written.newest
        if online:
            self._write_online(state, online)
        self.broker.ack(state.key, GROUP, [m.id for m in accepted])
        now = time.time()
        for message in accepted:
            if math.isfinite(message.published_at):  # a producer that did not say when is not timed
                self.delivery.labels(self.usecase.name, state.name).observe(max(now - message.published_at, 0.0))
        state.counts["processed"] += len(written.new)
        state.counts["duplicates"] += len(rows) - len(written.new)
        self.events.labels(self.usecase.name, state.name, "processed").inc(len(written.new))
        self.events.labels(self.usecase.name, state.name, "duplicate").inc(len(rows) - len(written.new))
        if rows:
            times = [r[state.sink.timestamp] for r in rows]
            state.oldest = min(times) if state.oldest is None else min(state.oldest, *times)
            state.newest = max(times) if state.newest is None else max(state.newest, *times)

    def announce_complete_days(self) -> list[dt.date]:
        """Append to the `days` stream every local day, after the last one announced (or from the first the
        streams wrote), that every stream has passed: its newest event is at or after the day's end."""
        if any(s.newest is None for s in self.streams):
            return []
        tz = self.usecase.tz
        through = min(s.newest for s in self.streams)
        last = through.astimezone(tz).date() - dt.timedelta(days=1)  # through >= its next day's local midnight
        first = min(s.oldest for s in self.streams).astimezone(tz).date()
        day = self.announced + dt.timedelta(days=1) if self.announced else first
        announced = []
        while day <= last:
            self.broker.append(self.days_key, {"day": day.isoformat(), "through": through.isoformat()})
            self.announced = day
            announced.append(day)
            log.info("%s: every stream is past %s (through %s)", self.usecase.name, day, through.isoformat())
            day += dt.timedelta(days=1)
        return announced

    def _write_online(self, state: StreamState, rows: list[dict]) -> None:
        import pandas as pd

        frame = pd.DataFrame(rows).drop(columns=["event_id"], errors="ignore")
        frame[state.sink.timestamp] = pd.to_datetime(frame[state.sink.timestamp], utc=True)
        self.store.write_to_online_store(state.spec.feature_view, df=frame)

    def health(self) -> dict:
        return {
            "usecase": self.usecase.name,
            "consumer": self.consumer,
            "uptime_s": round(time.time() - self.started, 1),
            "streams": {
                s.name: {
                    **s.counts,
                    "newest_event": s.newest.isoformat() if s.newest else None,
                    "lag": self.broker.lag(s.key, GROUP),
                }
                for s in self.streams
            },  # fmt: skip
            "complete_through": self.announced.isoformat() if self.announced else None,
        }


def serve_health(processor: StreamProcessor, port: int) -> http.server.ThreadingHTTPServer:
    """`/healthz` (JSON) and `/metrics` (Prometheus text) on 127.0.0.1:`port`, in a daemon thread."""
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's naming)
            if self.path == "/healthz":
                body, kind = json.dumps(processor.health()).encode(), "application/json"
            elif self.path == "/metrics":
                body, kind = generate_latest(processor.registry), CONTENT_TYPE_LATEST
            else:
                self.send_error(404, "try /healthz or /metrics")
                return
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):  # the processor's own log says what matters
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True, name="stream-health").start()
    return server
