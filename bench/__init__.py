"""Measurements that compare the platform with a baseline in the same run."""

from __future__ import annotations

import json
from pathlib import Path

from pipelines.settings import REPO_ROOT
from pipelines.usecases.spec import load_usecase

FLIGHT_DELAY = load_usecase(REPO_ROOT / "usecases", "flight_delay")  # the shipped spec the benchmarks run on


def write_results(out: Path, results: dict, table: str) -> None:
    """A benchmark's figures as `out` (JSON) and its Markdown table beside it (`.md`), and the table printed."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    out.with_suffix(".md").write_text(table.rstrip("\n") + "\n")
    print(table)
