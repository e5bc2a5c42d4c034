"""Airflow's asset watcher on the event broker: a day's streams complete -> that day's reconciliation.

The stream processor appends each local day that every stream of a use case has passed to the use
case's `days` stream on the broker (pipelines/streaming/processor.py). `StreamDaysTrigger` reads it in
Airflow's triggerer with a consumer group of its own and turns each entry into an event of the
`<use case>_stream_days` asset, on which the reconciliation DAG is scheduled: no sensor polls for the
day's end, and a day is reconciled whole as soon as the streams have passed it.

Why not the Redis provider's `MessageQueueTrigger` (`redis+pubsub`): a pub/sub message published while
no triggerer listens is lost, and a lost day is a day never reconciled. Here the entry waits in the
stream. The trigger runs in the triggerer's acknowledging mode (Airflow >= 3.3's shared streams): an
entry is acknowledged only once the asset event made of it is stored in Airflow's metadata database,
so a triggerer stopped in between reads it again on restart (at least once; reconciling a day twice
changes nothing).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Hashable, Sequence
from typing import Any

from airflow.triggers.base import BaseEventTrigger, TriggerEvent
from airflow.triggers.shared_stream import AdvanceItem, SharedStreamProducer

GROUP = "airflow-asset-watchers"
CONSUMER = "triggerer"  # one name: whichever triggerer runs the watcher next reads what the last left pending


class StreamDaysTrigger(BaseEventTrigger):
    """An asset event for every day on the broker's stream `key` (`redis://host:port/db` at `broker_url`)."""

    def __init__(self, broker_url: str, key: str, block_ms: int = 5000):
        super().__init__()
        self.broker_url, self.key, self.block_ms = broker_url, key, block_ms

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (f"{type(self).__module__}.{type(self).__qualname__}",
                {"broker_url": self.broker_url, "key": self.key, "block_ms": self.block_ms})  # fmt: skip

    def shared_stream_key(self) -> Hashable:
        return ("redis-stream", self.broker_url, self.key)

    @classmethod
    def create_shared_stream_producer(cls, kwargs: dict[str, Any]) -> DaysReader:
        return DaysReader(kwargs["broker_url"], kwargs["key"], kwargs.get("block_ms", 5000))

    async def filter_shared_stream(self, shared_stream: AsyncIterator[Any]) -> AsyncIterator[TriggerEvent]:
        async for entry in shared_stream:
            yield TriggerEvent(_payload(entry))

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Outside the triggerer's shared streams: each entry acknowledged once its event was taken."""
        reader = self.create_shared_stream_producer(self.serialize()[1])
        try:
            async for entry, entry_id in reader.open_stream():
                yield TriggerEvent(_payload(entry))
                await reader.acknowledge([entry_id])
        finally:
            await reader.aclose()


class DaysReader(SharedStreamProducer):
    """The `days` stream through the consumer group `airflow-asset-watchers`: first the entries this consumer
    was given and never acknowledged, then new ones; acknowledged when Airflow has stored their events."""

    def __init__(self, broker_url: str, key: str, block_ms: int):
        self.broker_url, self.key, self.block_ms, self.client = broker_url, key, block_ms, None

    async def open_stream(self) -> AsyncIterator[tuple[dict[str, str], str]]:
        import redis
        import redis.asyncio

        self.client = redis.asyncio.Redis.from_url(self.broker_url, decode_responses=True)
        try:
            await self.client.xgroup_create(self.key, GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        cursor = "0"  # the pending entries after this id; then ">": entries never delivered
        while True:
            pending = cursor != ">"
            answer = await self.client.xreadgroup(GROUP, CONSUMER, {self.key: cursor}, count=100,
                                                  block=None if pending else self.block_ms)  # fmt: skip
            entries = [(entry_id, fields) for _, batch in answer or [] for entry_id, fields in batch]
            if pending:
                cursor = entries[-1][0] if entries else ">"
            for entry_id, fields in entries:
                if fields:  # a pending entry trimmed from the stream has no fields left
                    yield fields, entry_id

    async def advance(self, batch: Sequence[AdvanceItem]) -> None:
        # A failed entry (its event not stored in time) stays pending: read again when the watcher restarts.
        await self.acknowledge([item.broker_payload for item in batch if item.outcome.is_clean])

    async def acknowledge(self, entry_ids: list[str]) -> None:
        if entry_ids:
            await self.client.xack(self.key, GROUP, *entry_ids)

    async def aclose(self) -> None:
        if self.client is not None:
            await self.client.aclose()


def _payload(entry: dict[str, str]) -> dict[str, str]:
    return {"day": entry.get("day", ""), "through": entry.get("through", "")}
