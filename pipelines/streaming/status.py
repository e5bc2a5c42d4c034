"""Where a use case's streams stand: published, processed, dead-lettered, not yet acknowledged (for the CLI
and `make run`'s summary)."""

from __future__ import annotations

from dataclasses import dataclass

from pipelines.settings import Settings
from pipelines.usecases.spec import UseCase


@dataclass
class StreamStatus:
    stream: str
    published: int  # entries on the broker
    processed: int  # distinct events in the offline stream sink
    dead_lettered: int
    lag: int  # published and not acknowledged by the processor
    newest: str | None  # the newest feature timestamp the stream wrote

    def render(self) -> str:
        return (f"{self.stream}: published {self.published}, processed {self.processed}, dead-lettered "
                f"{self.dead_lettered}, lag {self.lag}, newest {self.newest or '-'}")  # fmt: skip


@dataclass
class UseCaseStreams:
    usecase: str
    streams: list[StreamStatus]

    def render(self) -> str:
        return "\n".join(f"{self.usecase} {s.render()}" for s in self.streams)


def stream_status(settings: Settings, usecase: UseCase) -> UseCaseStreams:
    from pipelines.features.store import feature_store
    from pipelines.streaming.broker import RedisStreams, dead_letter_key, stream_key
    from pipelines.streaming.processor import GROUP
    from pipelines.streaming.sink import sink_engine, view_sink

    broker, engine, store = RedisStreams(settings.stream_broker_url), sink_engine(settings, usecase.name), None
    found = []
    for name, stream in (usecase.streaming.streams if usecase.streaming else {}).items():
        store = store or feature_store(settings)
        view = store.get_feature_view(stream.feature_view)
        sink = view_sink(engine, view, usecase.sources.tables[stream.table], stream)
        key, dead, newest = (
            stream_key(settings, usecase.name, name),
            dead_letter_key(settings, usecase.name, name),
            sink.newest(),
        )
        found.append(StreamStatus(name, broker.length(key), sink.count(), broker.length(dead), broker.lag(key, GROUP),
                                  newest.isoformat() if newest else None))  # fmt: skip
    return UseCaseStreams(usecase.name, found)
