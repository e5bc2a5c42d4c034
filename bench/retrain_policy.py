"""Does the retraining policy retrain when it pays, and only then? The shipped policy beside the
naive one (each day's log loss and calibration judged alone, 2 days in a row), on the same real data
in the same run: April to August 2013 replayed against a January-March champion, a step to July
traffic, and null pairs (random halves of the champion's reference period). See
pipelines/monitoring/backtest.py. Usage (about 5 minutes on 2 cores, the first time 45 s more to
build January to August):

    .venv/bin/python -m bench.retrain_policy [--data-root var/bench/retrain] [--out bench/results/retrain_policy.json]
        [--set FIELD=VALUE ...]  (a third policy: the shipped one with these fields changed)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from bench import write_results

INTEGER_FIELDS = {"min_rows", "consecutive", "cooldown_days", "performance_days"}
NAIVE = {"max_loss_ratio": 1.10, "max_bias": 0.05, "consecutive": 2, "performance_days": 1}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", type=Path, default=Path("var/bench/retrain"))
    parser.add_argument("--out", type=Path, default=Path("bench/results/retrain_policy.json"))
    parser.add_argument("--pairs", type=int, default=20)
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="also run the shipped policy with this field changed (repeatable), e.g. "
                        "--set max_bias=0.08 --set max_loss_ratio=1.2")  # fmt: skip
    args = parser.parse_args()
    variant = {}
    for item in args.set:
        field, _, value = item.partition("=")
        variant[field] = int(value) if field in INTEGER_FIELDS else float(value)

    from pipelines.monitoring.backtest import Scenario, evaluate_policy, render
    from pipelines.monitoring.policy import RetrainPolicy
    from pipelines.security.vault import platform_vault
    from pipelines.settings import load_settings
    from pipelines.usecases.spec import resolve_usecase

    scenario = Scenario(pairs=args.pairs)
    with platform_vault(load_settings(data_root=args.data_root)) as settings:
        spec = resolve_usecase(settings, "flight_delay")
        shipped = RetrainPolicy.of(spec.monitoring.retraining)
        folder = args.data_root / "backtest"
        results = {
            "shipped": evaluate_policy(settings, spec, shipped, scenario, folder / "shipped"),
            "naive": evaluate_policy(settings, spec, dataclasses.replace(shipped, **NAIVE), scenario, folder / "naive"),
        }
        if variant:
            results["variant " + json.dumps(variant)] = evaluate_policy(
                settings, spec, dataclasses.replace(shipped, **variant), scenario, folder / "variant"
            )
    text = "\n\n".join(["## Retraining policy backtest", *(render(name, r) for name, r in results.items())])
    write_results(args.out, results, text)


if __name__ == "__main__":
    main()
