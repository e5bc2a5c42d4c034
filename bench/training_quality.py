"""How good is the champion on real data, next to the naive baseline on the same holdout, at each
prediction time (the spec's `prediction.lead_time`) side by side?

Builds a long window of days through the platform's own stages in bulk (land, validate and
load each day, then one full dbt build and the Feast export: the same code the DAGs call,
without Airflow's per-task overhead), then, for each lead time, runs the training DAG's steps on
the same days with its own registry and prints the gate report. Usage (about 2 s per day to
build, then about a minute of training per lead time, on 2 cores):

    .venv/bin/python -m bench.training_quality --data-root var/bench/april \\
        --first 2013-01-01 --last 2013-04-30 --train-days 83 --validation-days 7 --holdout-days 30 \\
        --lead-times start_of_day PT2H --out bench/results/training_quality.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from pathlib import Path

from bench import FLIGHT_DELAY, write_results

METRICS = ("roc_auc", "pr_auc", "log_loss", "log_loss_skill", "brier")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", type=Path, required=True)
    parser.add_argument("--first", type=dt.date.fromisoformat, default=dt.date(2013, 1, 1))
    parser.add_argument("--last", type=dt.date.fromisoformat, default=dt.date(2013, 3, 31))
    parser.add_argument("--train-days", type=int, default=42)
    parser.add_argument("--validation-days", type=int, default=7)
    parser.add_argument("--holdout-days", type=int, default=14)
    parser.add_argument("--lead-times", nargs="+", default=["start_of_day", "PT2H"],
                        help="prediction.lead_time values (start_of_day or an ISO 8601 duration)")  # fmt: skip
    parser.add_argument("--out", type=Path, help="write the comparison here (JSON, and the table as .md)")
    args = parser.parse_args()

    from pipelines.orchestration import training
    from pipelines.orchestration.bulk import build_days
    from pipelines.security.vault import platform_vault
    from pipelines.settings import load_settings
    from pipelines.training.dataset import TrainingData
    from pipelines.usecases.spec import windows

    lengths = windows(args.train_days, args.validation_days, args.holdout_days)
    base = load_settings(data_root=args.data_root, usecase_overrides={"flight_delay": lengths})
    modes = {}
    with platform_vault(base) as vaulted:
        built = build_days(vaulted, FLIGHT_DELAY, args.first, args.last)
        print(f"built {(args.last - args.first).days + 1} days in {built:.0f} s")
        for lead in args.lead_times:
            # Each prediction time gets its own registry: its candidates are judged on its holdout, not
            # against a champion that was trained for another instant.
            tag = lead.lower().replace(":", "")
            settings = vaulted.model_copy(update={
                "artifact_store_uri": (args.data_root / f"artifacts-{tag}").resolve().as_uri(),
                "usecase_overrides": {"flight_delay": {**lengths, "prediction.lead_time": lead}},
            })  # fmt: skip
            folder = training.prepare_run(settings, "flight_delay", args.last, f"quality-{args.last}-{tag}")
            window = TrainingData.load(Path(folder)).window
            for family in ("xgboost", "mlp"):
                training.train_candidate(settings, folder, family)
            outcome = training.gate_and_register(settings, folder)
            print(f"prediction.lead_time {lead}; window {window.as_dict()}")
            print(training.render(outcome))
            (Path(folder) / "outcome.json").write_text(json.dumps(outcome, indent=2, default=str))
            modes[lead] = {"window": window.as_dict(), "folder": folder, "candidates": [
                {"family": r["family"], "passed": r["passed"], **{m: r["holdout"][m] for m in METRICS}}
                for r in outcome["registered"]
            ], "baseline": {m: outcome["registered"][0]["baseline"][m] for m in METRICS}}  # fmt: skip
    table = render(modes)
    if args.out:
        write_results(args.out, {"first": str(args.first), "last": str(args.last), "modes": modes}, table)
    else:
        print(table)


def render(modes: dict) -> str:
    lines = [
        "| prediction time | model | gate | ROC AUC | PR AUC | log loss | log-loss skill | Brier |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for lead, mode in modes.items():
        rows = [(c["family"], "passed" if c["passed"] else "rejected", c) for c in mode["candidates"]]
        for family, gate, m in [*rows, ("naive baseline", "", mode["baseline"])]:
            lines.append(f"| {lead} | {family} | {gate} | " + " | ".join(f"{m[k]:.4f}" for k in METRICS) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
