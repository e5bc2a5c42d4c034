"""The asset watcher's reader of the broker's `days` stream (pipelines/orchestration/stream_days.py) on a real
Redis: each announced day becomes one trigger event, an entry is acknowledged only once Airflow has stored its
event, and an entry given out and never acknowledged (the triggerer stopped) is read again first on restart.
tests/e2e/test_stream_reconciliation.py runs it in Airflow's own triggerer."""

from __future__ import annotations

import asyncio

import pytest

from pipelines.orchestration.stream_days import GROUP, DaysReader, StreamDaysTrigger
from tests.conftest import require_service

BROKER_URL = "redis://127.0.0.1:6379/14"  # a database of its own, emptied before each test
KEY = "test:flight_delay:days"


@pytest.fixture
def broker():
    import redis

    try:
        client = redis.Redis.from_url(BROKER_URL, decode_responses=True, socket_connect_timeout=3)
        client.flushdb()
    except redis.RedisError as exc:
        require_service(False, f"Redis is not reachable at {BROKER_URL}: {exc}")
    return client


def _announce(broker, *days: str) -> list[str]:
    return [broker.xadd(KEY, {"day": day, "through": f"{day}T23:59:00+00:00"}) for day in days]


async def _take(reader: DaysReader, count: int) -> list[tuple[dict, str]]:
    taken, stream = [], reader.open_stream()
    async with asyncio.timeout(10):
        async for entry in stream:
            taken.append(entry)
            if len(taken) == count:
                break
    await stream.aclose()
    return taken


def test_an_entry_whose_event_was_not_stored_is_read_again_first_after_a_restart(broker):
    from airflow.triggers.shared_stream import AdvanceItem, AdvanceOutcome

    ids = _announce(broker, "2013-07-01", "2013-07-02")

    async def first_triggerer():
        reader = DaysReader(BROKER_URL, KEY, block_ms=200)
        taken = await _take(reader, 2)
        # Airflow stored the first day's event; the second's was never confirmed (the triggerer stopped).
        await reader.advance([AdvanceItem(ids[0], AdvanceOutcome(acked=1, failed=0)),
                              AdvanceItem(ids[1], AdvanceOutcome(acked=0, failed=1))])  # fmt: skip
        await reader.aclose()
        return taken

    assert [(entry["day"], entry_id) for entry, entry_id in asyncio.run(first_triggerer())] == [
        ("2013-07-01", ids[0]), ("2013-07-02", ids[1])]  # fmt: skip
    assert broker.xpending(KEY, GROUP)["pending"] == 1
    later = _announce(broker, "2013-07-03")

    async def restarted():
        reader = DaysReader(BROKER_URL, KEY, block_ms=200)
        taken = await _take(reader, 2)
        await reader.advance([AdvanceItem(entry_id, AdvanceOutcome(acked=1, failed=0)) for _, entry_id in taken])
        await reader.aclose()
        return taken

    assert [entry_id for _, entry_id in asyncio.run(restarted())] == [ids[1], later[0]]
    assert broker.xpending(KEY, GROUP)["pending"] == 0


def test_the_trigger_turns_each_announced_day_into_one_event_and_acknowledges_it(broker):
    _announce(broker, "2013-07-01", "2013-07-02")
    trigger = StreamDaysTrigger(BROKER_URL, KEY, block_ms=200)
    classpath, kwargs = trigger.serialize()
    assert classpath == "pipelines.orchestration.stream_days.StreamDaysTrigger"
    assert kwargs == {"broker_url": BROKER_URL, "key": KEY, "block_ms": 200}
    assert trigger.shared_stream_key() == StreamDaysTrigger(**kwargs).shared_stream_key()

    async def two_events():
        events, run = [], trigger.run()
        async with asyncio.timeout(10):
            async for event in run:
                events.append(event.payload)
                if len(events) == 2:
                    break
        await run.aclose()
        return events

    assert asyncio.run(two_events()) == [{"day": "2013-07-01", "through": "2013-07-01T23:59:00+00:00"},
                                         {"day": "2013-07-02", "through": "2013-07-02T23:59:00+00:00"}]  # fmt: skip
    # The first was acknowledged when the second was asked for; the second, given out, waits for its turn.
    assert broker.xpending(KEY, GROUP)["pending"] == 1
