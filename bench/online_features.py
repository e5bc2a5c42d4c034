"""Online feature reads (DESIGN.md §6): Feast `get_online_features` of the model's FeatureService
against raw reads of the same keys from the same store, in the same run.

SQLite (the embedded default): Feast vs `sqlite3` selecting each view's rows of the serialized entity
keys and decoding the values (protobuf), as Feast's own online store does. Redis (production: the
warehouse and Feast's offline store in PostgreSQL, its registry in PostgreSQL, the online store in
Redis): Feast vs redis-py, one pipelined HMGET of each view's hashed feature names per entity key,
values decoded, as Feast's Redis store does. The production run uses a PostgreSQL database of its own
(platform_bench_online, recreated) and Redis database 5 (emptied).

The store holds a week of flights, built through the platform's stages and materialized; each
request asks for the flights' four entities (carrier, route, plane, origin), one flight or 100.
Usage (about two minutes on 2 cores, the first time a minute more to build the week twice):

    .venv/bin/python -m bench.online_features [--data-root var/bench/online] [--out bench/results/online_features.json]
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
from pathlib import Path

import numpy as np

from bench import FLIGHT_DELAY, write_results

FIRST, LAST = dt.date(2013, 1, 1), dt.date(2013, 1, 7)
BENCH_DATABASE, BENCH_REDIS = "platform_bench_online", "redis://127.0.0.1:6379/5"
VIEW_KEYS = {"carrier_delay_rates": "carrier", "route_delay_rates": "route", "plane_features": "tailnum_hash",
             "origin_weather": "origin"}  # fmt: skip


def timed(call, repeats: int) -> dict[str, float]:
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    return {"p50_ms": float(np.percentile(samples, 50)), "p99_ms": float(np.percentile(samples, 99))}


def entity_rows(settings, count: int) -> list[dict]:
    """`count` flights of the last built day as the service builds its entity rows."""
    from pipelines.features.store import training_entities

    known = dt.datetime.combine(LAST + dt.timedelta(days=2), dt.time(), dt.UTC)
    flights = training_entities(settings, FLIGHT_DELAY, LAST, LAST, known).head(count)
    return flights[list(VIEW_KEYS.values())].to_dict("records")


def _entity_key(name: str, value: str):
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    return EntityKey(join_keys=[name], entity_values=[Value(string_val=value)])


def sqlite_reader(settings, store, rows: list[dict]):
    """Raw sqlite3 reads of the rows' keys in every view, values decoded (what Feast's store does)."""
    import sqlite3

    from feast.infra.key_encoding_utils import serialize_entity_key
    from feast.protos.feast.types.Value_pb2 import Value

    version = store.config.entity_key_serialization_version
    con = sqlite3.connect(settings.feast_dir / "online_store.db", check_same_thread=False)
    keys = {view: [serialize_entity_key(_entity_key(key, str(r[key])), version) for r in rows]
            for view, key in VIEW_KEYS.items()}  # fmt: skip

    def read() -> dict:
        out = {}
        for view, serialized in keys.items():
            marks = ",".join("?" * len(serialized))
            cursor = con.execute(
                f'SELECT entity_key, feature_name, value FROM "{store.project}_{view}" WHERE entity_key IN ({marks})',  # noqa: S608 # the view names are module constants
                serialized,
            )
            for entity_key, feature, blob in cursor:
                value = Value()
                value.ParseFromString(blob)
                out[(view, entity_key, feature)] = value
        return out

    return read


def redis_reader(settings, store, rows: list[dict]):
    """Raw redis-py reads of the rows' keys in every view (one pipelined HMGET each), values decoded."""
    import redis
    from feast.infra.online_stores.helpers import _mmh3, _redis_key
    from feast.protos.feast.types.Value_pb2 import Value

    version = store.config.entity_key_serialization_version
    client = redis.Redis.from_url(settings.redis_url)
    commands = []
    for view, key in VIEW_KEYS.items():
        fields = [_mmh3(f"{view}:{f.name}") for f in store.get_feature_view(view).features] + [f"_ts:{view}"]
        commands += [(_redis_key(store.project, _entity_key(key, str(r[key])), version), fields) for r in rows]

    def read() -> list:
        with client.pipeline(transaction=False) as pipe:
            for redis_key, fields in commands:
                pipe.hmget(redis_key, fields)
            replies = pipe.execute()
        out = []
        for reply in replies:
            values = []
            for blob in reply[:-1]:
                value = Value()
                if blob is not None:
                    value.ParseFromString(blob)
                values.append(value)
            out.append(values)
        return out

    if not any(v.WhichOneof("val") for reply in read() for v in reply):
        raise SystemExit(f"Redis at {settings.redis_url} holds none of the keys read: the layout is not Feast's")
    return read


def production(settings, data_root: Path):
    """`settings` for the production stores: a fresh PostgreSQL database (its connection kept in Vault),
    an empty Redis database."""
    import shutil

    import psycopg2
    import redis

    from pipelines.security.secrets import LOCAL_POSTGRES, put_connection
    from pipelines.security.vault import local_openbao

    admin = psycopg2.connect("postgresql://postgres@127.0.0.1:5432/postgres")
    admin.autocommit = True
    admin.cursor().execute(f"DROP DATABASE IF EXISTS {BENCH_DATABASE} WITH (FORCE)")
    admin.cursor().execute(f"CREATE DATABASE {BENCH_DATABASE}")
    admin.close()
    put_connection(local_openbao(settings).root(), "bench_postgres", {**LOCAL_POSTGRES, "schema": BENCH_DATABASE})
    redis.Redis.from_url(BENCH_REDIS).flushdb()
    shutil.rmtree(data_root, ignore_errors=True)  # its landed days belong to the database just dropped
    return settings.model_copy(update={"data_root": data_root.resolve(), "warehouse_target": "postgres",
                                       "postgres_conn_id": "bench_postgres", "feast_env": "production",
                                       "redis_url": BENCH_REDIS})  # fmt: skip


def measure(settings, label: str, raw_reader, repeats: int) -> dict:
    from pipelines.features.store import feature_store

    store = feature_store(settings)
    service = store.get_feature_service(FLIGHT_DELAY.features.feature_service)
    out = {}
    for count in (1, 100):
        rows = entity_rows(settings, count)
        feast_read = lambda rows=rows: store.get_online_features(features=service, entity_rows=rows).to_dict()  # noqa: E731
        raw = raw_reader(settings, store, rows)
        feast_read(), raw()  # warm both
        feast, baseline = timed(feast_read, repeats), timed(raw, repeats)
        out[f"{count} rows"] = {
            "feast": feast, "raw": baseline,
            "ratio_p50": feast["p50_ms"] / baseline["p50_ms"], "ratio_p99": feast["p99_ms"] / baseline["p99_ms"],
        }  # fmt: skip
        print(f"{label} {count:>3} rows: Feast p50 {feast['p50_ms']:.2f} p99 {feast['p99_ms']:.2f} ms | raw p50 "
              f"{baseline['p50_ms']:.3f} p99 {baseline['p99_ms']:.3f} ms", flush=True)  # fmt: skip
    return out


def build(settings) -> None:
    from pipelines.features.store import materialize
    from pipelines.orchestration.bulk import build_days

    build_days(settings, FLIGHT_DELAY, FIRST, LAST, validate=False)
    materialize(settings, FLIGHT_DELAY, dt.datetime.combine(LAST + dt.timedelta(days=1), dt.time(), FLIGHT_DELAY.tz))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", type=Path, default=Path("var/bench/online"))
    parser.add_argument("--out", type=Path, default=Path("bench/results/online_features.json"))
    parser.add_argument("--repeats", type=int, default=300)
    args = parser.parse_args()

    from pipelines.security.vault import platform_vault
    from pipelines.settings import load_settings

    results = {}
    with platform_vault(load_settings(data_root=args.data_root)) as settings:
        build(settings)
        results["sqlite"] = measure(settings, "sqlite", sqlite_reader, args.repeats)
        redis_settings = production(settings, args.data_root / "production")
        build(redis_settings)
        results["redis"] = measure(redis_settings, "redis", redis_reader, args.repeats)
    lines = ["## Online features: Feast beside raw reads of the same keys", "",
             "| store | rows | Feast p50 / p99 ms | raw p50 / p99 ms | ratio p50 / p99 |",
             "|---|---|---|---|---|"]  # fmt: skip
    for backend, sizes in results.items():
        for size, r in sizes.items():
            lines.append(
                f"| {backend} | {size.split()[0]} | {r['feast']['p50_ms']:.2f} / {r['feast']['p99_ms']:.2f} | "
                f"{r['raw']['p50_ms']:.3f} / {r['raw']['p99_ms']:.3f} | {r['ratio_p50']:.1f}x / {r['ratio_p99']:.1f}x |"
            )
    write_results(args.out, results, "\n".join(lines))


if __name__ == "__main__":
    main()
