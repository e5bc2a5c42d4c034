"""Validation (DESIGN.md §6, target <= 3x): the raw flights suite (expectations/raw_flights.json) as
the ingest DAG runs it, a Great Expectations checkpoint on a pandas frame with its result and Data
Docs written, against the same expectations as vectorised pandas checks, on the same frame in the
same run: 100k rows and 1M rows (the flights three times over, bench/scale.py), so the table also
says how the cost grows. Both must agree: on the clean frame every expectation passes, and on a
copy with faults injected both fail exactly the same expectations, or the benchmark stops.

Usage (about 2 minutes on 2 cores):

    .venv/bin/python -m bench.validation [--data-root var/bench/validation] [--out bench/results/validation.json]
"""

from __future__ import annotations

import argparse
import functools
import re
import statistics
import time
from pathlib import Path

import pandas as pd

from bench import write_results
from bench.scale import growth, resampled_flights

SIZES = (100_000, 1_000_000)
TARGET_RATIO = 3.0


def pandas_checks(frame: pd.DataFrame, suite: dict, parameters: dict) -> list[str]:
    """The suite's expectations as vectorised pandas; the types of those that fail."""

    def value(v):
        return parameters[v["$PARAMETER"]] if isinstance(v, dict) else v

    failed = []
    for expectation in suite["expectations"]:
        kind, kw = expectation["type"], expectation["kwargs"]
        column = frame[kw["column"]] if "column" in kw else None
        present = column.dropna() if column is not None else None
        if kind == "expect_table_columns_to_match_set":
            ok = set(frame.columns) == set(kw["column_set"])
        elif kind == "expect_table_row_count_to_be_between":
            ok = value(kw["min_value"]) <= len(frame) <= value(kw["max_value"])
        elif kind == "expect_column_values_to_not_be_null":
            ok = bool(column.notna().all())
        elif kind == "expect_compound_columns_to_be_unique":
            ok = not frame.duplicated(kw["column_list"]).any()
        elif kind == "expect_column_values_to_be_in_set":
            ok = bool(present.isin(kw["value_set"]).all())
        elif kind == "expect_column_values_to_match_regex":
            ok = bool(present.astype(str).str.match(re.compile(kw["regex"])).all())
        elif kind == "expect_column_values_to_be_in_type_list":
            ok = str(column.dtype) in kw["type_list"]
        elif kind == "expect_column_values_to_be_between":
            ok = bool(((present >= value(kw["min_value"])) & (present <= value(kw["max_value"]))).all())
        else:
            raise ValueError(f"no pandas equivalent of {kind}: add one before comparing")
        if not ok:
            failed.append(kind + (f"({kw['column']})" if "column" in kw else ""))
    return sorted(failed)


def gx_failed(outcome) -> list[str]:
    """The failed expectations of a checkpoint outcome, named as pandas_checks names them."""
    return sorted(re.sub(r"\(column=([^,)]+)\)", r"(\1)", f.split(":")[0]).replace("()", "") for f in outcome.failed)


def with_faults(frame: pd.DataFrame) -> pd.DataFrame:
    broken = frame.copy()
    broken.loc[broken.index[:50], "carrier"] = "ZZ"
    broken.loc[broken.index[50:60], "distance"] = -1.0
    broken.loc[broken.index[60:70], "dest"] = "not-an-airport"
    return broken


def timed(call, repeats: int):
    samples, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = call()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", type=Path, default=Path("var/bench/validation"))
    parser.add_argument("--out", type=Path, default=Path("bench/results/validation.json"))
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from pipelines.settings import load_settings
    from pipelines.validation.checkpoints import run_checkpoint, suite_definition

    settings = load_settings(data_root=args.data_root)
    suite = suite_definition("raw_flights")
    flights = resampled_flights(-(-max(SIZES) // 336_776)).to_pandas()
    parameters = {"min_rows": 0, "max_rows": 10 * max(SIZES),
                  "window_start": pd.Timestamp("2013-01-01", tz="UTC"),
                  "window_end": pd.Timestamp("2014-01-02", tz="UTC")}  # 2013 in New York, in UTC  # fmt: skip
    results = {"suite": "raw_flights", "expectations": len(suite["expectations"]), "sizes": {}}
    check = functools.partial(run_checkpoint, settings, "flights", "raw_flights")
    for size in SIZES:
        frame = flights.iloc[:size].reset_index(drop=True)
        broken = with_faults(frame)
        expected = pandas_checks(broken, suite, parameters)
        found = gx_failed(check(f"bench-faults-{size}", broken, parameters))
        clean = pandas_checks(frame, suite, parameters)
        if expected != found or clean:
            raise SystemExit(
                f"the pandas checks are not the suite's: on the faults pandas {expected}, GX {found}; "
                f"on the clean frame pandas {clean}"
            )
        label = f"bench-{size}"
        gx_s, outcome = timed(lambda f=frame, n=label: check(n, f, parameters), args.repeats)
        pandas_s, _ = timed(lambda f=frame: pandas_checks(f, suite, parameters), args.repeats)
        assert outcome.success
        results["sizes"][size] = {"gx_s": gx_s, "pandas_s": pandas_s, "ratio": gx_s / pandas_s,
                                  "faults_found": found}  # fmt: skip
        print(f"{size} rows: GX {gx_s:.2f} s, pandas {pandas_s:.2f} s", flush=True)
    small, large = (results["sizes"][s] for s in SIZES)
    factor = SIZES[1] // SIZES[0]
    results["growth"] = {k: growth(small[k], large[k], factor) for k in ("gx_s", "pandas_s")}
    lines = [f"## Validation: GX checkpoint against the same checks in pandas ({results['expectations']} "
             f"expectations of raw_flights, median of {args.repeats})", "",
             "| rows | GX checkpoint s | pandas s | ratio | target |", "|---|---|---|---|---|"]  # fmt: skip
    lines += [f"| {size:,} | {r['gx_s']:.2f} | {r['pandas_s']:.2f} | {r['ratio']:.1f}x | <= {TARGET_RATIO:g}x |"
              for size, r in results["sizes"].items()]  # fmt: skip
    g = results["growth"]
    lines += ["", f"Cost growth from {SIZES[0]:,} to {SIZES[1]:,} rows, per unit of data (1.0 = linear): "
              f"GX {g['gx_s']:.2f}, pandas {g['pandas_s']:.2f}. Both found the same injected faults: "
              f"{', '.join(small['faults_found'])}."]  # fmt: skip
    write_results(args.out, results, "\n".join(lines))


if __name__ == "__main__":
    main()
