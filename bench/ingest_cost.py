"""What one ingested day costs through Airflow, and where it goes (issue: throughput of the orchestrated path).

For each data size (1x and 10x the flights, `bench/scale.py`), in a data root of its own, days in turn:

1. **warm**: the four stages (land, validate, transform, materialize: `pipelines/orchestration/ingest.py`, as the
   ingest DAG's tasks call them) in one process that has already run them for an earlier day: the stages' own work.
2. **cold**: each stage in a fresh interpreter, as Airflow runs a task: the work plus the imports and set-up a
   process pays before it (the interpreter's own start measured apart, `python -c pass`).
3. **LocalExecutor** and 4. **CeleryExecutor** (one worker, Redis broker, PostgreSQL metadata): days backfilled
   through the scheduler and API server `make run` uses; from Airflow's task instances, each task's duration and
   the gaps between a task's end and the next one's start, and the day's run from its first task's start to its
   last task's end.

The ratio that matters: a day through the scheduler against the same day's stages warm in one process.

Then **ranges** at 1x, each in a fresh data root through a running scheduler (LocalExecutor): 30 and 90 days through
the backfill DAG (four tasks for the whole range), and 30 days through the ingest DAG's day-by-day runs (Airflow's
own backfill, two runs at a time), wall time from the request to the last task's end, and the growth from 30 to 90
days. Usage (about 25 minutes on 2 cores; PostgreSQL and Redis on loopback for Celery, skipped without them):

    .venv/bin/python -m bench.ingest_cost [--data-root var/bench/ingest_cost] [--out bench/results/ingest_cost.json]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench import FLIGHT_DELAY, write_results
from pipelines.settings import REPO_ROOT

STAGES = ("land", "validate", "transform", "materialize")
FIRST = dt.date(2013, 1, 1)
FACTORS = (1, 10)
RANGES = (30, 90)  # days through the backfill DAG; the first also day by day through the ingest DAG
TARGET_RATIO, TARGET_90_DAYS_S = 3.0, 300.0
BROKER_DB = 12  # a Redis database of its own
POSTGRES_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


def _stage(name: str, day: dt.date, carried: dict) -> dict:
    from pipelines.orchestration import ingest

    usecase = FLIGHT_DELAY.name
    if name == "land":
        return ingest.land(usecase, day)
    if name == "validate":
        return ingest.validate(usecase, day, carried.get("relanded", []))
    if name == "transform":
        return ingest.transform(usecase, day, carried.get("relanded", []))
    return ingest.materialize(usecase, day)


def child(stages: list[str], days: list[dt.date]) -> None:
    """In a child process: run `stages` for each of `days` in order; print each one's seconds as JSON."""
    timings = []
    for day in days:
        carried: dict = {}
        for name in stages:
            started = time.perf_counter()
            result = _stage(name, day, carried)
            if name == "land":
                carried = result
            timings.append({"day": day.isoformat(), "stage": name, "seconds": time.perf_counter() - started})
    print(json.dumps(timings))


def _run_child(env: dict, stages: list[str], days: list[dt.date]) -> tuple[list[dict], float]:
    started = time.perf_counter()
    command = [sys.executable, "-m", "bench.ingest_cost", "--child", ",".join(stages), *[d.isoformat() for d in days]]
    done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=REPO_ROOT)
    if done.returncode:
        raise SystemExit(f"stages {stages} on {days} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1]), time.perf_counter() - started


def _task_instances(settings, dag_id: str) -> list[dict]:
    import sqlalchemy

    url = settings.airflow_metadata_url.get_secret_value() if settings.airflow_metadata_url else None
    engine = sqlalchemy.create_engine(url or f"sqlite:///{settings.airflow_dir / 'airflow.db'}")
    with engine.connect() as con:
        rows = con.execute(sqlalchemy.text(
            "SELECT run_id, task_id, start_date, end_date, duration, state FROM task_instance WHERE dag_id = :dag "
            "ORDER BY start_date"), {"dag": dag_id}).mappings().all()  # fmt: skip
    engine.dispose()
    return [dict(r) for r in rows]


def _moment(value) -> dt.datetime:
    return value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value))


def through_airflow(settings, first: dt.date, last: dt.date, executor: str) -> dict:
    """Backfill [first, last] through the scheduler; per task its mean duration, per day the run and the gaps."""
    from pipelines.orchestration import local_airflow

    dag_id = FLIGHT_DELAY.dag_id("ingest")
    local_airflow.prepare(settings)
    started = time.perf_counter()
    if executor == "CeleryExecutor":
        with local_airflow.scheduling(settings) as scheduler, local_airflow.celery_workers(settings, 1):
            runs = scheduler.backfill(dag_id, first, last, FLIGHT_DELAY.tz)
    else:
        runs = local_airflow.backfill(settings, dag_id, first, last, FLIGHT_DELAY.tz)
    wall = time.perf_counter() - started
    if any(r["state"] != "success" for r in runs):
        raise SystemExit(f"{executor}: runs did not all succeed: {[r['state'] for r in runs]}")
    instances = [i for i in _task_instances(settings, dag_id) if i["task_id"] in STAGES and i["state"] == "success"]
    per_run: dict[str, list[dict]] = {}
    for i in instances:
        per_run.setdefault(i["run_id"], []).append(i)
    days, gaps = [], []
    for tasks in per_run.values():
        tasks.sort(key=lambda i: _moment(i["start_date"]))
        days.append((_moment(tasks[-1]["end_date"]) - _moment(tasks[0]["start_date"])).total_seconds())
        gaps += [(_moment(b["start_date"]) - _moment(a["end_date"])).total_seconds()
                 for a, b in zip(tasks, tasks[1:], strict=False)]  # fmt: skip
    starts = [_moment(i["start_date"]) for i in instances]
    ends = [_moment(i["end_date"]) for i in instances]
    return {
        "days": len(per_run), "backfill_wall_s": wall,
        # what a day of a backfill costs: the tasks' first start to their last end, over the days (two runs at
        # a time, as Airflow's backfill here runs them); `day_s` is one run's own span, its gaps included
        "per_day_s": (max(ends) - min(starts)).total_seconds() / len(per_run),
        "task_s": {s: statistics.mean(float(i["duration"]) for i in instances if i["task_id"] == s) for s in STAGES},
        "day_s": statistics.mean(days), "gap_s": statistics.mean(gaps) if gaps else 0.0,
    }  # fmt: skip


def _fresh_postgres(name: str) -> str:
    import psycopg2

    con = psycopg2.connect(POSTGRES_ADMIN)
    con.autocommit = True
    with con.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
        cur.execute(f'CREATE DATABASE "{name}"')
    con.close()
    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"


def measure(root: Path, factor: int) -> dict:
    from pydantic import SecretStr

    from bench.scale import resampled_source
    from pipelines.orchestration.airflow_env import airflow_environment
    from pipelines.processes import port_open
    from pipelines.security.vault import platform_vault
    from pipelines.settings import load_settings

    source = resampled_source(root.parent, factor) if factor > 1 else None
    low, high = FLIGHT_DELAY.sources.tables["flights"].rows_per_day  # the suite's bounds, for this many flights
    more = {FLIGHT_DELAY.name: {"sources.tables.flights.rows_per_day": [low * factor, high * factor]}}
    base = load_settings(data_root=root / "var", airflow_home=root / "airflow", source_dir=source,
                         usecase_overrides=more)  # fmt: skip
    days = [FIRST + dt.timedelta(days=i) for i in range(13)]
    with platform_vault(base) as settings:
        env = airflow_environment(settings)
        interpreter = min(_run_python(env) for _ in range(3))
        _run_child(env, list(STAGES), days[:1])  # the first day lands the reference tables too: not timed
        cold = {}
        for name in STAGES:  # day 2: each stage in a process of its own
            _, cold[name] = _run_child(env, [name], days[1:2])
        warm_runs, _ = _run_child(env, list(STAGES), days[2:5])  # days 3-5 in one process: 4 and 5 are warm
        timed = [t for t in warm_runs if t["day"] != days[2].isoformat()]
        warm = {s: statistics.mean(t["seconds"] for t in timed if t["stage"] == s) for s in STAGES}
        local = through_airflow(settings, days[5], days[8], "LocalExecutor")
        celery = None
        if port_open(6379) and port_open(5432):
            import redis

            redis.Redis.from_url(f"redis://127.0.0.1:6379/{BROKER_DB}").flushdb()
            celery_settings = settings.model_copy(update={
                "airflow_home": root / "airflow-celery", "airflow_executor": "CeleryExecutor",
                "airflow_metadata_url": SecretStr(_fresh_postgres(f"bench_ingest_cost_x{factor}")),
                "celery_broker_url": f"redis://127.0.0.1:6379/{BROKER_DB}"})  # fmt: skip
            celery = through_airflow(celery_settings, days[9], days[12], "CeleryExecutor")
    return {"factor": factor, "interpreter_s": interpreter, "warm_s": warm, "cold_s": cold, "local": local,
            "celery": celery}  # fmt: skip


def ranges(root: Path) -> dict:
    """Backfill DAG over RANGES days and the ingest DAG day by day over the first, each from an empty data root."""
    from pipelines.orchestration import local_airflow
    from pipelines.security.vault import platform_vault
    from pipelines.settings import load_settings

    def fresh(name: str):
        shutil.rmtree(root / name, ignore_errors=True)
        return load_settings(data_root=root / name / "var", airflow_home=root / name / "airflow")

    out: dict = {"backfill_dag": {}, "ingest_dag": {}}
    for days in RANGES:
        with platform_vault(fresh(f"backfill-{days}")) as settings:
            local_airflow.prepare(settings)
            last = FIRST + dt.timedelta(days=days - 1)
            with local_airflow.scheduling(settings) as scheduler:
                started = time.perf_counter()
                scheduler.trigger(FLIGHT_DELAY.dag_id("backfill"), {"first_day": FIRST.isoformat(),
                                                                     "last_day": last.isoformat()})  # fmt: skip
                wall = time.perf_counter() - started
            tasks = {i["task_id"]: float(i["duration"])
                     for i in _task_instances(settings, FLIGHT_DELAY.dag_id("backfill"))}  # fmt: skip
            out["backfill_dag"][days] = {"wall_s": wall, "task_s": tasks}
    days = RANGES[0]
    with platform_vault(fresh(f"ingest-{days}")) as settings:
        local_airflow.prepare(settings)
        with local_airflow.scheduling(settings) as scheduler:
            started = time.perf_counter()
            scheduler.backfill(FLIGHT_DELAY.dag_id("ingest"), FIRST, FIRST + dt.timedelta(days=days - 1),
                               FLIGHT_DELAY.tz)  # fmt: skip
            out["ingest_dag"][days] = {"wall_s": time.perf_counter() - started}
    return out


def _run_python(env: dict) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], env=env, check=True)
    return time.perf_counter() - started


def table(results: dict) -> str:
    rows = ["| size | stage | warm, one process s | cold process s | LocalExecutor task s | CeleryExecutor task s |",
            "|---|---|---:|---:|---:|---:|"]  # fmt: skip
    summary = [
        "",
        "| size | day warm s | day cold s | LocalExecutor s a day (a run's span; gaps) | "
        "Celery s a day (span; gaps) | Local / warm | Celery / warm |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results["sizes"]:
        celery = r["celery"]
        for s in STAGES:
            rows.append(f"| {r['factor']}x | {s} | {r['warm_s'][s]:.2f} | {r['cold_s'][s]:.2f} | "
                        f"{r['local']['task_s'][s]:.2f} | {celery['task_s'][s]:.2f} |" if celery else
                        f"| {r['factor']}x | {s} | {r['warm_s'][s]:.2f} | {r['cold_s'][s]:.2f} | "
                        f"{r['local']['task_s'][s]:.2f} | - |")  # fmt: skip
        warm, cold = sum(r["warm_s"].values()), sum(r["cold_s"].values())

        def cells(path, warm=warm) -> tuple[str, str]:
            if not path:
                return "-", "-"
            return (f"{path['per_day_s']:.1f} ({path['day_s']:.1f}; {path['gap_s']:.1f})",
                    f"{path['per_day_s'] / warm:.1f}x")  # fmt: skip

        (local, local_ratio), (celery_day, celery_ratio) = cells(r["local"]), cells(celery)
        summary.append(f"| {r['factor']}x | {warm:.1f} | {cold:.1f} | {local} | {celery_day} | {local_ratio} | "
                       f"{celery_ratio} |")  # fmt: skip
    interpreter = results["sizes"][0]["interpreter_s"]
    lines = [*rows, *summary, "", f"A bare interpreter starts in {interpreter:.2f} s here."]
    ranged = results.get("ranges")
    if ranged:
        backfill, ingest = ranged["backfill_dag"], ranged["ingest_dag"]
        first, last = RANGES[0], RANGES[-1]
        lines += ["", "| days (1x) | backfill DAG wall s | s a day | ingest DAG day by day wall s | s a day |",
                  "|---:|---:|---:|---:|---:|"]  # fmt: skip
        for days in RANGES:
            b, i = backfill[days], ingest.get(days)
            lines.append(f"| {days} | {b['wall_s']:.0f} | {b['wall_s'] / days:.2f} | "
                         + (f"{i['wall_s']:.0f} | {i['wall_s'] / days:.2f} |" if i else "- | - |"))  # fmt: skip
        growth = backfill[last]["wall_s"] / backfill[first]["wall_s"]
        lines += ["", f"{first} -> {last} days through the backfill DAG: {growth:.2f}x the time for "
                      f"{last / first:.0f}x the days (its tasks: "
                      + ", ".join(f"{t} {v:.0f} s" for t, v in backfill[last]["task_s"].items()) + ")."]  # fmt: skip
    targets = _targets(results)
    if targets:
        lines += ["", "| target | measured | met |", "|---|---:|---|",
                  *(f"| {t} | {v} | {'yes' if ok else 'no'} |" for t, v, ok in targets)]  # fmt: skip
    return "\n".join(lines)


def _targets(results: dict) -> list[tuple[str, str, bool]]:
    """(target, measured, met) for the issue's targets this benchmark measures."""
    found = []
    for r in results["sizes"]:
        ratio = r["local"]["per_day_s"] / sum(r["warm_s"].values())
        found.append((f"{r['factor']}x: a day through LocalExecutor <= {TARGET_RATIO:.0f}x its stages warm",
                      f"{ratio:.1f}x", ratio <= TARGET_RATIO))  # fmt: skip
    ranged = results.get("ranges")
    if ranged:
        wall = ranged["backfill_dag"][RANGES[-1]]["wall_s"]
        found.append((f"{RANGES[-1]} days through the scheduler <= {TARGET_90_DAYS_S:.0f} s", f"{wall:.0f} s",
                      wall <= TARGET_90_DAYS_S))  # fmt: skip
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", type=Path, default=REPO_ROOT / "var" / "bench" / "ingest_cost")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "bench" / "results" / "ingest_cost.json")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("days", nargs="*", type=dt.date.fromisoformat, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child.split(","), args.days)
    results = {"sizes": []}
    for factor in FACTORS:
        root = args.data_root.resolve() / f"x{factor}"
        shutil.rmtree(root, ignore_errors=True)  # every run from the same empty root
        os.environ.pop("PLATFORM_DATA_ROOT", None)
        results["sizes"].append(measure(root, factor))
    results["ranges"] = ranges(args.data_root.resolve() / "ranges")
    write_results(args.out, results, table(results))


if __name__ == "__main__":
    main()
