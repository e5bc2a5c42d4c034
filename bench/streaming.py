"""The real-time path's freshness and throughput (issue: real-time path): the stream processor
(`platform stream process`, its own process) against a bare client of the same broker, in the same run.

Freshness: events published at a steady rate (1,000 and 10,000 events/s) to Redis Streams; a reader
polls the newest value of each key, and each time a newer event becomes readable the time since it
was published is a sample. Ours is read through Feast's `get_online_features`; the bare client reads
with redis-py (XREADGROUP, XACK) and writes each event's value with plain `sqlite3`, read back with
`sqlite3` (no validation, no offline sink, no Feast). Throughput: events published as fast as the
broker takes them, timed until every one is acknowledged, at N and 10 N events.

The events are the weather stream's, of three airports, each carrying its index in `pressure` so the
reader knows which one it sees. Redis database 6 (emptied). Usage (about two minutes on 2 cores):

    .venv/bin/python -m bench.streaming [--data-root var/bench/streaming] [--out bench/results/streaming.json]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import multiprocessing
import shutil
import sqlite3
import threading
import time
from pathlib import Path

import numpy as np

from bench import FLIGHT_DELAY, write_results

BROKER = "redis://127.0.0.1:6379/6"
ORIGINS = ("EWR", "JFK", "LGA")
BASE = dt.datetime(2013, 1, 1, 5, tzinfo=dt.UTC)


def event(i: int) -> tuple[str, str, dict]:
    when = BASE + dt.timedelta(hours=i // len(ORIGINS))
    # The columns the weather stream carries.
    data = {"origin": ORIGINS[i % len(ORIGINS)], "temp": 40.0, "dewp": 30.0, "humid": 60.0, "wind_speed": 10.0,
            "wind_gust": None, "precip": 0.0, "pressure": 1000.0 + i, "visib": 10.0,
            "time_hour": when.isoformat()}  # fmt: skip
    return f"bench/{i}", (when + dt.timedelta(hours=1)).isoformat(), data


class Publisher:
    """Publishes events first, first + 1, ... at `rate` per second (0: as fast as possible), noting when."""

    def __init__(self, broker, key: str, first: int, count: int, rate: float):
        self.broker, self.key, self.first, self.count, self.rate = broker, key, first, count, rate
        self.published_at = np.full(first + count, np.nan)

    def run(self) -> None:
        started, done, tick = time.monotonic(), 0, 1000 if self.rate == 0 else max(1, int(self.rate / 200))
        while done < self.count:
            if self.rate:
                wait = done / self.rate - (time.monotonic() - started)
                if wait > 0:
                    time.sleep(wait)
            batch = range(self.first + done, self.first + min(done + tick, self.count))
            now = time.time()
            self.published_at[batch.start : batch.stop] = now  # before: the reader may see them at once
            self.broker.publish(self.key, [event(i) for i in batch], now)
            done += len(batch)


def freshness(broker, key: str, read_newest, first: int, rate: float, seconds: float) -> dict:
    """Publish `rate` events/s for `seconds` while polling `read_newest()` -> newest index per key."""
    publisher = Publisher(broker, key, first, int(rate * seconds), rate)
    thread = threading.Thread(target=publisher.run)
    seen, samples = dict.fromkeys(ORIGINS, first - 1), []
    thread.start()
    deadline = time.monotonic() + seconds + 30
    last = first + publisher.count - 1
    while time.monotonic() < deadline and min(seen.values()) < last - len(ORIGINS) + 1:
        newest, now = read_newest(), time.time()
        for origin, index in newest.items():
            if index > seen[origin] and index >= first:
                seen[origin] = index
                samples.append(now - publisher.published_at[index])
    thread.join()
    ms = np.array(samples) * 1000
    caught_up = min(seen.values()) >= last - len(ORIGINS) + 1
    return {"rate": rate, "events": publisher.count, "samples": len(ms), "p50_ms": float(np.percentile(ms, 50)),
            "p99_ms": float(np.percentile(ms, 99)), "caught_up": caught_up}  # fmt: skip


def throughput(broker, key: str, lag, first: int, count: int) -> dict:
    started = time.monotonic()
    Publisher(broker, key, first, count, 0).run()
    while lag():
        time.sleep(0.02)
    seconds = time.monotonic() - started
    return {"events": count, "seconds": seconds, "events_per_s": count / seconds}


def bare_consumer(path: str, key: str, stop) -> None:
    """The baseline: read, write each value with sqlite3, acknowledge. Nothing checked, nothing kept offline."""
    import json

    import redis

    client = redis.Redis.from_url(BROKER, decode_responses=True)
    con = sqlite3.connect(path)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("CREATE TABLE IF NOT EXISTS newest (origin TEXT PRIMARY KEY, pressure REAL, at TEXT)")
    with contextlib.suppress(redis.ResponseError):  # BUSYGROUP: it exists
        client.xgroup_create(key, "bare", id="0", mkstream=True)
    while not stop.is_set():
        answer = client.xreadgroup("bare", "bare-1", {key: ">"}, count=500, block=100)
        for _, entries in answer or []:
            rows = [(d["origin"], d["pressure"], d["time_hour"]) for d in (json.loads(f["data"]) for _, f in entries)]
            con.executemany("INSERT OR REPLACE INTO newest VALUES (?, ?, ?)", rows)
            con.commit()
            client.xack(key, "bare", *[i for i, _ in entries])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", type=Path, default=Path("var/bench/streaming"))
    parser.add_argument("--out", type=Path)
    parser.add_argument("--rates", type=float, nargs="+", default=[1000, 10000])
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--events", type=int, default=20000, help="throughput at this many events and 10x")
    args = parser.parse_args()

    import redis

    from pipelines.security.vault import platform_vault, vault_environment
    from pipelines.settings import load_settings

    shutil.rmtree(args.data_root, ignore_errors=True)
    redis.Redis.from_url(BROKER).flushdb()
    base = load_settings(data_root=args.data_root, stream_broker_url=BROKER, stream_processor_port=8399)
    with platform_vault(base) as settings:
        results = measure(settings, args, vault_environment(settings))
    write_results(args.out or args.data_root / "streaming.json", results, render(results, args))


def measure(settings, args, vault_env: dict[str, str]) -> dict:
    from pipelines.features.store import apply_definitions, feature_store
    from pipelines.streaming.broker import RedisStreams, stream_key
    from pipelines.streaming.processor import GROUP
    from pipelines.streaming.service import running_processor
    from pipelines.usecases.spec import resolve_usecase

    apply_definitions(settings)
    usecase = resolve_usecase(settings, FLIGHT_DELAY.name)
    broker, store = RedisStreams(BROKER), feature_store(settings)
    key = stream_key(settings, usecase.name, "weather_observations")
    bare_key = key + ":bare"  # the baseline's own stream

    def feast_newest() -> dict[str, int]:
        rows = store.get_online_features(features=["origin_weather:pressure_mb"],
                                         entity_rows=[{"origin": o} for o in ORIGINS]).to_dict()  # fmt: skip
        return {o: _index(p) for o, p in zip(ORIGINS, rows["pressure_mb"], strict=True)}

    def bare_newest() -> dict[str, int]:
        try:
            with sqlite3.connect(bare_db) as con:
                return {o: _index(p) for o, p in con.execute("SELECT origin, pressure FROM newest")}
        except sqlite3.OperationalError:  # its table is not there yet
            return {}

    results = {}
    with running_processor(settings, usecase, log=args.data_root / "processor.log", env=vault_env):
        results["platform"] = run_suite(broker, key, feast_newest, lambda: broker.lag(key, GROUP), args)
    bare_db, stop = args.data_root / "bare.sqlite", multiprocessing.Event()
    consumer = multiprocessing.Process(target=bare_consumer, args=(str(bare_db), bare_key, stop))
    consumer.start()
    try:
        time.sleep(1)  # its consumer group exists
        results["bare"] = run_suite(broker, bare_key, bare_newest, lambda: broker.lag(bare_key, "bare"), args)
    finally:
        stop.set()
        consumer.join(timeout=30)
    return results


def run_suite(broker, key: str, read_newest, lag, args) -> dict:
    """Freshness at each rate, then throughput at N and 10 N events, on stream `key`."""
    results, first = {}, 0
    for rate in args.rates:
        results[f"freshness_{rate:g}"] = freshness(broker, key, read_newest, first, rate, args.seconds)
        first += int(rate * args.seconds)
    for count in (args.events, 10 * args.events):
        results[f"throughput_{count}"] = throughput(broker, key, lag, first, count)
        first += count
    return results


def _index(pressure) -> int:
    return -1 if pressure is None else int(round(pressure - 1000))


def render(results: dict, args) -> str:
    ours, bare = results["platform"], results["bare"]
    lines = ["| published -> readable | processor p50 ms | p99 ms | bare client p50 ms | p99 ms | p99 ratio |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    for rate in args.rates:
        o, b = ours[f"freshness_{rate:g}"], bare[f"freshness_{rate:g}"]
        note = "" if o["caught_up"] else " (fell behind)"
        lines.append(f"| {rate:,.0f} events/s{note} | {o['p50_ms']:.1f} | {o['p99_ms']:.1f} | {b['p50_ms']:.1f} | "
                     f"{b['p99_ms']:.1f} | {o['p99_ms'] / b['p99_ms']:.1f}x |")  # fmt: skip
    lines += ["", "| saturation | processor events/s | bare client events/s | ratio |", "|---|---|---|---|"]
    for count in (args.events, 10 * args.events):
        o, b = ours[f"throughput_{count}"], bare[f"throughput_{count}"]
        lines.append(f"| {count:,} events | {o['events_per_s']:,.0f} | {b['events_per_s']:,.0f} | "
                     f"{o['events_per_s'] / b['events_per_s']:.2f} |")  # fmt: skip
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
