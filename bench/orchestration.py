"""DAG file parse time (DESIGN.md §6, target ≤ 0.5 s per file): each DAG file run in a fresh
interpreter that has imported `airflow.sdk` (what Airflow's DAG processor holds before it reads a
DAG file), against that interpreter importing `airflow.sdk` alone, in the same run; best of 5.
Usage (about 40 s on 2 cores):

    .venv/bin/python -m bench.orchestration [--out bench/results/orchestration.json]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from bench import write_results
from pipelines.settings import REPO_ROOT

TARGET_S = 0.5


def best_of(args: list[str], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run([sys.executable, *args], check=True, capture_output=True, cwd=REPO_ROOT)
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("bench/results/orchestration.json"))
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    baseline = best_of(["-c", "import airflow.sdk"], args.repeats)
    results = {"baseline_import_airflow_sdk_s": baseline, "dags": {}}
    for dag_file in sorted((REPO_ROOT / "dags").glob("*.py")):
        total = best_of(["-c", "import airflow.sdk, runpy, sys; runpy.run_path(sys.argv[1])", str(dag_file)],
                        args.repeats)  # fmt: skip
        results["dags"][dag_file.name] = {"total_s": total, "parse_s": max(total - baseline, 0.0)}
    lines = [f"## DAG file parse time (fresh interpreter, best of {args.repeats})", "",
             f"Baseline `python -c 'import airflow.sdk'`: {baseline:.3f} s", "",
             "| DAG file | total s | parse s (beyond the baseline) | target |", "|---|---|---|---|"]  # fmt: skip
    lines += [f"| {name} | {r['total_s']:.3f} | {r['parse_s']:.3f} | <= {TARGET_S} s |"
              for name, r in results["dags"].items()]  # fmt: skip
    write_results(args.out, results, "\n".join(lines))


if __name__ == "__main__":
    main()
