"""Orchestration: the gap between task starts (DESIGN.md §6). A DAG of ten chained no-op tasks
(bench/dags/task_chain.py) triggered through the scheduler and API server the platform runs
(LocalExecutor, SQLite metadata: `make run`'s), each task's start measured from the previous task's
end (Airflow's task instance records), with the platform's idle scheduler sleep
(PLATFORM_AIRFLOW_IDLE_SLEEP_SECONDS) and with Airflow's default (1 s), against the same ten
callables in a plain Python loop, in the same run; with the idle scheduler's CPU (scheduler and API
server, 20 s without runs) for each. Reported, not gated. Usage (about three minutes):

    .venv/bin/python -m bench.task_gap [--data-root var/bench/task_gap] [--out bench/results/task_gap.json]
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import time
from pathlib import Path

import numpy as np

from bench import write_results
from bench.dags.task_chain import STEPS, step
from pipelines.settings import REPO_ROOT

DAG_ID = "bench_task_chain"
AIRFLOW_DEFAULT_SLEEP_S = 1.0
IDLE_S = 20


def loop_seconds(repeats: int = 10_000) -> float:
    started = time.perf_counter()
    for _ in range(repeats):
        value = 0
        for _ in range(STEPS):
            value = step(value)
    return (time.perf_counter() - started) / repeats


def measure(settings, runs: int) -> dict:
    """Trigger the chain `runs` times through the scheduler; task boundaries, run length, idle CPU."""
    import psutil

    from pipelines.orchestration import local_airflow

    local_airflow.prepare(settings)
    gaps, durations = [], []
    with local_airflow.scheduling(settings) as scheduler:
        processes = [psutil.Process(p.pid) for p in scheduler.processes.values()]

        def cpu_seconds() -> float:
            return sum(sum(p.cpu_times()[:2]) for top in processes for p in [top, *top.children(recursive=True)])

        time.sleep(5)
        before = cpu_seconds()
        time.sleep(IDLE_S)
        idle_cpu = (cpu_seconds() - before) / IDLE_S
        for _ in range(runs):
            run = scheduler.trigger(DAG_ID, {})
            listed = scheduler.api.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{run['dag_run_id']}/taskInstances").json()
            instances = sorted(listed["task_instances"], key=lambda t: int(t["task_id"].split("_")[1]))
            starts = [dt.datetime.fromisoformat(t["start_date"]) for t in instances]
            ends = [dt.datetime.fromisoformat(t["end_date"]) for t in instances]
            gaps += [(s - e).total_seconds() for e, s in zip(ends, starts[1:], strict=False)]
            durations.append((ends[-1] - starts[0]).total_seconds())
    return {"gap_p50_s": float(np.percentile(gaps, 50)), "gap_p95_s": float(np.percentile(gaps, 95)),
            "run_s": statistics.median(durations), "idle_cpu_cores": idle_cpu}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", type=Path, default=Path("var/bench/task_gap"))
    parser.add_argument("--out", type=Path, default=Path("bench/results/task_gap.json"))
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    from pipelines.settings import load_settings

    settings = load_settings(data_root=args.data_root.resolve(), dags_folder=REPO_ROOT / "bench" / "dags")
    results = {"steps": STEPS, "runs": args.runs, "executor": settings.airflow_executor, "loop_s": loop_seconds(),
               "sleeps": {}}  # fmt: skip
    for sleep in (settings.airflow_idle_sleep_seconds, AIRFLOW_DEFAULT_SLEEP_S):
        results["sleeps"][str(sleep)] = measure(settings.model_copy(update={"airflow_idle_sleep_seconds": sleep}),
                                                args.runs)  # fmt: skip
    lines = [f"## Orchestration: gap between task starts ({STEPS} chained no-op tasks, {args.runs} runs, "
             f"{settings.airflow_executor})", "",
             "| idle scheduler sleep | task boundary p50 / p95 | the 10 steps, first start to last end | "
             "idle scheduler + API server CPU |", "|---|---|---|---|"]  # fmt: skip
    for sleep, r in results["sleeps"].items():
        who = "platform" if float(sleep) == settings.airflow_idle_sleep_seconds else "Airflow's default"
        lines.append(f"| {sleep} s ({who}) | {r['gap_p50_s']:.2f} s / {r['gap_p95_s']:.2f} s | {r['run_s']:.1f} s | "
                     f"{r['idle_cpu_cores']:.0%} of a core |")  # fmt: skip
    lines += ["", f"The same {STEPS} callables in a plain loop: {results['loop_s'] * 1e6:.1f} us."]
    write_results(args.out, results, "\n".join(lines))


if __name__ == "__main__":
    main()
