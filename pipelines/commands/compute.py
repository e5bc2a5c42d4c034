"""`platform calibrate` (this machine's scoring and training costs, for the compute planner) and `platform
batch-score` (a day's items scored with the champion, as the batch DAG scores them)."""

from __future__ import annotations

import argparse
import datetime as dt
import json

from pipelines.settings import get_settings
from pipelines.usecases.spec import resolve_usecase

NO_VAULT_COMMANDS = {"calibrate"}  # measures this machine only


def add_commands(commands) -> None:
    calibrate = commands.add_parser("calibrate", help="measure this machine's scoring and training costs for the "
                                                      "compute planner (stored under the data root)")  # fmt: skip
    calibrate.set_defaults(handler=run)
    score = commands.add_parser("batch-score", help="score a day's items with the champion into batch.<usecase> "
                                                    "and a Parquet partition (as the batch DAG does)")  # fmt: skip
    score.add_argument("usecase", nargs="?")
    score.add_argument("--day", type=dt.date.fromisoformat, required=True, help="the items' day, YYYY-MM-DD")
    score.add_argument("--items-table", help="score this warehouse table's rows of the day (schema.table) instead "
                                             "of the source's published schedule")  # fmt: skip
    score.set_defaults(handler=run)


def run(args: argparse.Namespace) -> None:
    settings = get_settings()
    if args.command == "calibrate":
        from pipelines.compute.planner import calibrate, calibration_path, plan_scoring

        calibration = calibrate(settings)
        print(f"Calibrated {json.dumps(calibration.hardware)} -> {calibration_path(settings)}")
        for rows in (1, 1_000, 1_000_000):
            print(f"  {rows:>9,} rows: {plan_scoring(calibration, rows, calibration.features).reason}")
        return
    from pipelines.batch.scoring import score_day, warehouse_items

    usecase = resolve_usecase(settings, args.usecase)
    items = warehouse_items(settings, usecase, args.items_table, args.day) if args.items_table else None
    run_id = f"cli__{dt.datetime.now(dt.UTC).isoformat(timespec='seconds')}"
    print(score_day(settings, usecase, args.day, run_id, items=items).render())
