"""Batch scoring at 1x, 10x and 100x a day's published schedule: peak memory and rows per second of
`platform batch-score`, each size in its own process, beside the 1x run of the same command.

The items are the day's schedule `factor` times over, copy k of a flight numbered flight + 10000 k (the resampling
of bench/scale.py: the same carrier, route, plane and departure, so every copy has its features in the offline
store), written to a warehouse table and scored with `platform batch-score --items-table`, the path a team with
its own items table takes: champion verified and decrypted, features from the offline store as of each item's
prediction time, the partition streamed to Parquet in chunks and replaced in the warehouse. Peak memory is the
command's own high-water mark (`ru_maxrss` from wait4; the platform's OpenBao runs outside it). Target: under
2 GiB at 100x, memory growing with the chunk rather than the day.

The platform is the one `make run` builds, in its own data root (built on the first run and reused after: the
first seven days of January, a champion released). Usage:

    .venv/bin/python -m bench.batch_scale [--data-root var/bench/batch] [--out bench/results/batch_scale.json]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from bench import FLIGHT_DELAY, write_results
from bench.scale import FLIGHT_NUMBER_STRIDE
from pipelines.settings import REPO_ROOT

FACTORS = (1, 10, 100)
FIRST_DAY, DAYS = dt.date(2013, 1, 1), 7
DAY = FIRST_DAY + dt.timedelta(days=DAYS)  # the first day not landed: tomorrow's schedule, the DAG's default
TARGET_BYTES = 2 * 1024**3
BIN = Path(sys.executable).parent


def _environment(data_root: Path) -> dict[str, str]:
    return {**os.environ, "PLATFORM_DATA_ROOT": str(data_root)}


def built_platform(data_root: Path) -> None:
    """`make run`'s platform (no operated week) in `data_root`, unless an earlier run of this bench built it."""
    built = data_root / ".bench-built"
    if built.exists():
        return
    print(f"Building the platform in {data_root} (`platform run`, once) ...", flush=True)
    subprocess.run([str(BIN / "platform"), "run", "--usecase", FLIGHT_DELAY.name, "--start", FIRST_DAY.isoformat(),
                    "--days", str(DAYS), "--operate-days", "0"], env=_environment(data_root), check=True)  # fmt: skip
    built.touch()


def write_items(data_root: Path, factor: int) -> str:
    """The day's schedule `factor` times over as the warehouse table `bench.items_x<factor>`; its name."""
    import duckdb
    import pandas as pd

    from pipelines.settings import load_settings
    from serving.replay import day_requests

    settings = load_settings(data_root=data_root)
    schedule = pd.DataFrame(day_requests(settings, FLIGHT_DELAY, DAY))
    key = "flight_id"  # <date>-<carrier><flight>-<origin> (the spec's serving.replay)
    prefixes = [f"{DAY}-{carrier}" for carrier in schedule["carrier"]]
    parts = [(prefix, *text[len(prefix) :].split("-", 1)) for text, prefix in zip(schedule[key], prefixes, strict=True)]

    def numbered(k: int) -> list[str]:
        return [f"{prefix}{int(number) + FLIGHT_NUMBER_STRIDE * k}-{rest}" for prefix, number, rest in parts]

    copies = [schedule.assign(**{key: numbered(k)}) for k in range(factor)]
    items = pd.concat(copies, ignore_index=True)
    time_field = FLIGHT_DELAY.serving.time
    items[time_field] = pd.to_datetime(items[time_field])
    table = f"bench.items_x{factor}"
    with duckdb.connect(str(settings.warehouse_path)) as con:
        con.execute("CREATE SCHEMA IF NOT EXISTS bench")
        con.register("items", items)
        con.execute(f"CREATE OR REPLACE TABLE {table} AS SELECT * FROM items")  # noqa: S608 # nosec B608 # our name
    return table


def scored(data_root: Path, table: str) -> dict:
    """`platform batch-score` of the table in a process of its own: wall seconds, peak RSS, what it reported."""
    import tempfile

    command = [
        str(BIN / "platform"),
        "batch-score",
        FLIGHT_DELAY.name,
        "--day",
        DAY.isoformat(),
        "--items-table",
        table,
    ]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        process = subprocess.Popen(command, env=_environment(data_root), stdout=out, stderr=err)
        _, status, usage = os.wait4(process.pid, 0)  # this child's own rusage: its peak, no one else's
        wall = time.perf_counter() - started
        out.seek(0), err.seek(0)
        if os.waitstatus_to_exitcode(status):
            raise SystemExit(f"{' '.join(command)} failed:\n{err.read().decode()[-3000:]}")
        line = out.read().decode().strip().splitlines()[-1]
    found = re.search(r"\((\d+) scored,.* in (\d+) chunk\(s\) of at most (\d+), ([\d.]+) s", line)
    if found is None:
        raise SystemExit(f"unexpected batch-score output: {line}")
    return {"scored": int(found[1]), "chunks": int(found[2]), "chunk_rows": int(found[3]),
            "score_seconds": float(found[4]), "wall_seconds": wall, "peak_rss_bytes": usage.ru_maxrss * 1024,
            "line": line}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", type=Path, default=REPO_ROOT / "var" / "bench" / "batch")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "bench" / "results" / "batch_scale.json")
    args = parser.parse_args()
    data_root = args.data_root.resolve()
    built_platform(data_root)
    # measured once, before any size: otherwise the first size's command would calibrate this machine itself
    subprocess.run([str(BIN / "platform"), "calibrate"], env=_environment(data_root), check=True, capture_output=True)

    from pipelines.security.vault import local_openbao
    from pipelines.settings import load_settings

    server = local_openbao(load_settings(data_root=data_root))
    vault = server.start()  # each command reuses it: its memory is not theirs
    try:
        results = {"day": DAY.isoformat(), "target_peak_bytes": TARGET_BYTES, "factors": {}}
        for factor in FACTORS:
            results["factors"][factor] = scored(data_root, write_items(data_root, factor))
    finally:
        server.stop(vault)
    base = results["factors"][1]
    rows = [
        f"Batch scoring of {DAY} ({FLIGHT_DELAY.name}) with `platform batch-score --items-table`, one process per "
        f"size; target: peak RSS under {TARGET_BYTES / 1024**3:.0f} GiB at 100x.",
        "",
        "| size | items scored | chunks | score s | rows/s | peak RSS MiB | peak vs 1x | under target |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for factor, run in results["factors"].items():
        rows.append(f"| {factor}x | {run['scored']:,} | {run['chunks']} | {run['score_seconds']:.1f} | "
                    f"{run['scored'] / run['score_seconds']:,.0f} | {run['peak_rss_bytes'] / 1024**2:,.0f} | "
                    f"{run['peak_rss_bytes'] / base['peak_rss_bytes']:.2f} | "
                    f"{'yes' if run['peak_rss_bytes'] < TARGET_BYTES else 'NO'} |")  # fmt: skip
    write_results(args.out, results, "\n".join(rows))


if __name__ == "__main__":
    main()
