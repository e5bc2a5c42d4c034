"""How good is the champion on real data, next to the naive baseline on the same holdout?

Builds a long window of days through the platform's own stages in bulk (land, validate and
load each day, then one full dbt build and the Feast export: the same code the DAGs call,
without Airflow's per-task overhead), then runs the training DAG's steps and prints the gate
report. Usage (about 4 s per day to build, on 2 cores):

    .venv/bin/python -m bench.training_quality --data-root var/bench/quality \\
        --first 2013-01-01 --last 2013-03-31 --train-days 42 --validation-days 7 --holdout-days 14
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from pathlib import Path

from bench import FLIGHT_DELAY


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", type=Path, required=True)
    parser.add_argument("--first", type=dt.date.fromisoformat, default=dt.date(2013, 1, 1))
    parser.add_argument("--last", type=dt.date.fromisoformat, default=dt.date(2013, 3, 31))
    parser.add_argument("--train-days", type=int, default=42)
    parser.add_argument("--validation-days", type=int, default=7)
    parser.add_argument("--holdout-days", type=int, default=14)
    args = parser.parse_args()

    from pipelines.orchestration import training
    from pipelines.orchestration.bulk import build_days
    from pipelines.security.vault import platform_vault
    from pipelines.settings import load_settings
    from pipelines.training.dataset import TrainingData
    from pipelines.usecases.spec import windows

    lengths = windows(args.train_days, args.validation_days, args.holdout_days)
    base = load_settings(data_root=args.data_root, usecase_overrides={"flight_delay": lengths})
    with platform_vault(base) as settings:
        built = build_days(settings, FLIGHT_DELAY, args.first, args.last)
        folder = training.prepare_run(settings, "flight_delay", args.last, f"quality-{args.last}")
        window = TrainingData.load(Path(folder)).window
        for family in ("xgboost", "mlp"):
            training.train_candidate(settings, folder, family)
        outcome = training.gate_and_register(settings, folder)
        print(f"built {(args.last - args.first).days + 1} days in {built:.0f} s; window {window.as_dict()}")
        print(training.render(outcome))
        (Path(folder) / "outcome.json").write_text(json.dumps(outcome, indent=2, default=str))


if __name__ == "__main__":
    main()
