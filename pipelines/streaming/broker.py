"""The event broker: Redis Streams, behind the few calls the replayer and the stream processor make.

Why Redis Streams: the platform already runs Redis (Feast's production online store, the Celery
broker), and Streams give what the processor needs: consumer groups with explicit acknowledgement,
a pending list per consumer that survives a crash (what was read and not acknowledged is read again
on restart), and atomic MULTI/EXEC to dead-letter an event and acknowledge it together.

The same interface maps onto Kafka, the enterprise default: a stream is a topic (one partition per
key range), the consumer group is a Kafka consumer group, `ack` is an offset commit after the
writes, the pending list is everything after the committed offset, and the dead-letter stream is a
topic of its own. Only this module would change.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from pipelines.errors import PlatformError
from pipelines.settings import Settings


class BrokerUnavailable(PlatformError):
    """The broker cannot be reached; the message names its address and the fix."""


@dataclass(frozen=True)
class Message:
    id: str  # the broker's id of this delivery
    event_id: str  # the event's own id: the same for a redelivery or a duplicate publication
    event_time: str  # ISO 8601, UTC
    published_at: float  # UNIX seconds, when the replayer (the operational system) published it
    data: dict | None  # the event's columns; None when the payload is not a JSON object
    raw: dict[str, str]  # the fields as delivered, for the dead-letter stream


def stream_key(settings: Settings, usecase: str, stream: str) -> str:
    """The broker's stream of one of a use case's streams: `<namespace>:<use case>:<stream>`."""
    return f"{settings.broker_namespace}:{usecase}:{stream}"


def dead_letter_key(settings: Settings, usecase: str, stream: str) -> str:
    return f"{stream_key(settings, usecase, stream)}:dead"


def days_key(settings: Settings, usecase: str) -> str:
    """Where the stream processor announces each local day that every stream of the use case has passed
    (`day`, `through`): what Airflow's asset watcher of the day's reconciliation reads."""
    return f"{settings.broker_namespace}:{usecase}:days"


class RedisStreams:
    """A Redis server's streams (`url`: redis://host:port/db)."""

    def __init__(self, url: str) -> None:
        import redis

        self.url = url
        self.client = redis.Redis.from_url(url, decode_responses=True, socket_timeout=30)
        try:
            self.client.ping()
        except redis.RedisError as exc:
            raise BrokerUnavailable(
                f"the event broker at {url} is unreachable ({exc}); start Redis (see the README's services) or "
                "set PLATFORM_STREAM_BROKER_URL"
            ) from None

    def publish(self, key: str, events: list[tuple[str, str, dict]], published_at: float) -> int:
        """Append (event_id, event_time, data) events to stream `key`, in order; returns how many."""
        with self.client.pipeline(transaction=False) as pipe:
            for event_id, event_time, data in events:
                pipe.xadd(key, {"event_id": event_id, "event_time": event_time, "published_at": repr(published_at),
                                "data": json.dumps(data, allow_nan=True)})  # fmt: skip
            pipe.execute()
        return len(events)

    def ensure_group(self, key: str, group: str) -> None:
        """The consumer group `group` on `key`, reading from the stream's start (created with the stream)."""
        import redis

        try:
            self.client.xgroup_create(key, group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def read(self, keys: list[str], group: str, consumer: str, count: int, block_ms: int,
             pending: bool) -> dict[str, list[Message]]:  # fmt: skip
        """The next messages of each stream of `keys` for `consumer` (up to `count` a stream, keyed by stream): its
        own unacknowledged ones (`pending`: after a crash, what it read and did not acknowledge), else new ones,
        waiting up to `block_ms` for the first to arrive on any of the streams."""
        answer = self.client.xreadgroup(group, consumer, dict.fromkeys(keys, "0" if pending else ">"), count=count,
                                        block=None if pending else block_ms)  # fmt: skip
        found = {key: [_message(id_, fields) for id_, fields in entries if fields] for key, entries in answer or []}
        return {key: messages for key, messages in found.items() if messages}

    def ack(self, key: str, group: str, ids: list[str]) -> None:
        if ids:
            self.client.xack(key, group, *ids)

    def dead_letter(self, key: str, dead_key: str, group: str, message: Message, reason: str) -> None:
        """Move `message` to the dead-letter stream with its reason and acknowledge it, in one transaction."""
        with self.client.pipeline(transaction=True) as pipe:
            pipe.xadd(dead_key, {**message.raw, "reason": reason, "source_id": message.id})
            pipe.xack(key, group, message.id)
            pipe.execute()

    def lag(self, key: str, group: str) -> int:
        """Events of `key` the group has not acknowledged yet (delivered or not)."""
        import redis

        try:
            groups = {g["name"]: g for g in self.client.xinfo_groups(key)}
        except redis.ResponseError:
            return 0
        info = groups.get(group)
        if info is None:
            return self.client.xlen(key)
        undelivered = info.get("lag")
        return int(info.get("pending", 0)) + int(undelivered if undelivered is not None else 0)

    def append(self, key: str, fields: dict[str, str]) -> str:
        """Add one entry to stream `key`; its id."""
        return self.client.xadd(key, fields)

    def last(self, key: str) -> dict[str, str] | None:
        """The newest entry of `key`, or None."""
        newest = self.client.xrevrange(key, count=1)
        return newest[0][1] if newest else None

    def length(self, key: str) -> int:
        return self.client.xlen(key)

    def entries(self, key: str) -> list[dict[str, str]]:
        """Every entry of `key` (the dead-letter stream, for reports and tests)."""
        return [fields for _, fields in self.client.xrange(key)]

    def delete(self, *keys: str) -> None:
        self.client.delete(*keys)


def _message(id_: str, fields: dict[str, str]) -> Message:
    try:
        data = json.loads(fields.get("data", ""))
    except ValueError:
        data = None
    try:
        published = float(fields.get("published_at", "nan"))
    except ValueError:
        published = float("nan")
    return Message(id_, fields.get("event_id", ""), fields.get("event_time", ""), published,
                   data if isinstance(data, dict) else None, fields)  # fmt: skip
