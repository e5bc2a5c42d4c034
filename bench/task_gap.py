"""Orchestration: the gap between task starts (DESIGN.md §6). A DAG of ten chained no-op tasks
(bench/dags/task_chain.py) triggered through the scheduler and API server the platform runs
(LocalExecutor, SQLite metadata: `make run`'s), each task's start measured from the previous task's
end (Airflow's task instance records), against the same ten callables in a plain Python loop in the
same run. Reported, not gated: it is what one task boundary costs a DAG. Usage (about a minute):

    .venv/bin/python -m bench.task_gap [--data-root var/bench/task_gap] [--out bench/results/task_gap.json]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import time
from pathlib import Path

import numpy as np

from bench.dags.task_chain import STEPS, step
from pipelines.settings import REPO_ROOT

DAG_ID = "bench_task_chain"


def loop_seconds(repeats: int = 10_000) -> float:
    started = time.perf_counter()
    for _ in range(repeats):
        value = 0
        for _ in range(STEPS):
            value = step(value)
    return (time.perf_counter() - started) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", type=Path, default=Path("var/bench/task_gap"))
    parser.add_argument("--out", type=Path, default=Path("bench/results/task_gap.json"))
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    from pipelines.orchestration import local_airflow
    from pipelines.settings import load_settings

    settings = load_settings(data_root=args.data_root.resolve(), dags_folder=REPO_ROOT / "bench" / "dags")
    local_airflow.prepare(settings)
    gaps, durations = [], []
    with local_airflow.scheduling(settings) as scheduler:
        for _ in range(args.runs):
            run = scheduler.trigger(DAG_ID, {})
            listed = scheduler.api.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{run['dag_run_id']}/taskInstances").json()
            instances = sorted(listed["task_instances"], key=lambda t: int(t["task_id"].split("_")[1]))
            starts = [dt.datetime.fromisoformat(t["start_date"]) for t in instances]
            ends = [dt.datetime.fromisoformat(t["end_date"]) for t in instances]
            gaps += [(s - e).total_seconds() for e, s in zip(ends, starts[1:], strict=False)]
            durations.append((ends[-1] - starts[0]).total_seconds())
    loop = loop_seconds()
    results = {"steps": STEPS, "runs": args.runs, "executor": settings.airflow_executor,
               "gap_p50_s": float(np.percentile(gaps, 50)), "gap_p95_s": float(np.percentile(gaps, 95)),
               "run_s": statistics.median(durations), "loop_s": loop}  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    lines = [f"## Orchestration: gap between task starts ({STEPS} chained no-op tasks, {args.runs} runs, "
             f"{settings.airflow_executor})", "",
             "| measure | Airflow | plain loop |", "|---|---|---|",
             f"| one task boundary (previous end to next start), p50 / p95 | {results['gap_p50_s']:.2f} s / "
             f"{results['gap_p95_s']:.2f} s | - |",
             f"| the {STEPS} steps, first start to last end | {results['run_s']:.1f} s | "
             f"{loop * 1e6:.1f} us |"]  # fmt: skip
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
