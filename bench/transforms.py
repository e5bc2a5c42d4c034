"""Transforms (DESIGN.md §6, target: at most 1.2x the marginal cost of the SQL dbt runs): `dbt run` of the
feature models against the same models' compiled SQL run directly in DuckDB (`CREATE OR REPLACE`
each view and table in dependency order, in one connection), on the same warehouse, in the same
run, at 1x and 10x the flights (bench/scale.py). `dbt build` (models, seeds and the data tests)
is reported beside them: the tests are what dbt adds beyond running SQL. The marginal cost is what
ten times the data adds: (dbt at 10x - dbt at 1x) / (SQL at 10x - SQL at 1x); the rest of dbt's time
is a fixed cost per invocation (process start, project parse, connection), reported too.

Two weeks of January are landed and loaded into a warehouse of their own at each scale; each
measurement is the median of `--repeats`. Usage (about 4 minutes on 2 cores, the first time 2
more to resample and load):

    .venv/bin/python -m bench.transforms [--data-root var/bench/transforms] [--out bench/results/transforms.json]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import time
from pathlib import Path

from bench import FLIGHT_DELAY, write_results
from bench.scale import growth, resampled_source

FIRST, LAST = dt.date(2013, 1, 1), dt.date(2013, 1, 14)
FACTORS = (1, 10)
TARGET_RATIO = 1.2


def load_days(settings) -> int:
    """Land and load [FIRST, LAST] (once); returns the flights in the warehouse."""
    import duckdb

    from pipelines.ingest import land_day, land_reference
    from pipelines.ingest.warehouse import load_day, load_reference

    if not settings.warehouse_path.exists():
        land_reference(settings, FLIGHT_DELAY)
        load_reference(settings, FLIGHT_DELAY)
        day = FIRST
        while day <= LAST:
            land_day(settings, FLIGHT_DELAY, day)
            load_day(settings, FLIGHT_DELAY, day)
            day += dt.timedelta(days=1)
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        return con.execute("SELECT count(*) FROM raw.flights").fetchone()[0]


def compiled_models(settings) -> list[tuple[str, str, str]]:
    """(relation, materialization, compiled SQL) of every flight-delay model, dependencies first (dbt's manifest)."""
    manifest = json.loads((settings.data_root / "dbt" / "target" / "manifest.json").read_text())
    folder = "models/" + FLIGHT_DELAY.transform.select.removeprefix("path:models/") + "/"
    models = {uid: n for uid, n in manifest["nodes"].items()
              if n["resource_type"] == "model" and n["original_file_path"].startswith(folder)}  # fmt: skip
    ordered, seen = [], set()

    def visit(uid: str) -> None:
        if uid in seen or uid not in models:
            return
        seen.add(uid)
        for parent in models[uid]["depends_on"]["nodes"]:
            visit(parent)
        ordered.append(uid)

    for uid in sorted(models):
        visit(uid)
    compiled_dir = settings.data_root / "dbt" / "target"
    out = []
    for uid in ordered:
        node = models[uid]
        sql = (compiled_dir / "compiled" / node["package_name"] / node["original_file_path"]).read_text()
        relation = f'"{node["database"]}"."{node["schema"]}"."{node["alias"]}"'
        out.append((relation, node["config"]["materialized"], sql))
    return out


def run_compiled(settings, models: list[tuple[str, str, str]]) -> float:
    """The models' compiled SQL, run directly in one DuckDB connection (with the same `pii_hash` UDF the
    dbt-duckdb plugin registers); seconds."""
    import duckdb

    from pipelines.features.pii import hash_pii
    from pipelines.security.secrets import pii_salt

    salt = pii_salt(settings)
    started = time.perf_counter()
    with duckdb.connect(str(settings.warehouse_path)) as con:
        con.create_function("pii_hash", lambda value: hash_pii(value, salt), ["VARCHAR"], "VARCHAR",
                            null_handling="special")  # fmt: skip
        for relation, materialized, sql in models:
            kind = "VIEW" if materialized == "view" else "TABLE"
            con.execute(f"CREATE OR REPLACE {kind} {relation} AS {sql}")
    return time.perf_counter() - started


def dbt_seconds(settings, args: list[str]) -> float:
    from pipelines.features.transform import run_dbt

    started = time.perf_counter()
    completed = run_dbt(settings, args)
    seconds = time.perf_counter() - started
    if not completed.success:
        raise RuntimeError(f"dbt {' '.join(args)} failed:\n{completed.output}")
    return seconds


def measure(settings, repeats: int) -> dict:
    flights = load_days(settings)
    from pipelines.features.transform import dbt_scope

    scope = dbt_scope(FLIGHT_DELAY)
    build = dbt_seconds(settings, ["build", "--full-refresh", *scope])  # seeds, models, tests; writes the manifest
    models = compiled_models(settings)
    dbt_runs, direct = [], []
    for _ in range(repeats):
        dbt_runs.append(dbt_seconds(settings, ["run", "--full-refresh", *scope]))
        direct.append(run_compiled(settings, models))
    return {"flights": flights, "models": len(models), "dbt_build_s": build,
            "dbt_run_s": statistics.median(dbt_runs), "compiled_sql_s": statistics.median(direct),
            "ratio": statistics.median(dbt_runs) / statistics.median(direct)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", type=Path, default=Path("var/bench/transforms"))
    parser.add_argument("--out", type=Path, default=Path("bench/results/transforms.json"))
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from pipelines.security.vault import platform_vault
    from pipelines.settings import load_settings

    results = {"days": [FIRST.isoformat(), LAST.isoformat()], "scales": {}}
    for factor in FACTORS:
        base = load_settings(data_root=args.data_root / f"x{factor}",
                             source_dir=resampled_source(args.data_root, factor))  # fmt: skip
        with platform_vault(base) as settings:  # dbt reads the PII salt from Vault
            results["scales"][f"x{factor}"] = measure(settings, args.repeats)
        print(f"x{factor}: {results['scales'][f'x{factor}']}", flush=True)
    small, large = results["scales"]["x1"], results["scales"]["x10"]
    results["growth"] = {k: growth(small[k], large[k], 10) for k in ("dbt_run_s", "compiled_sql_s", "dbt_build_s")}
    results["marginal_ratio"] = (large["dbt_run_s"] - small["dbt_run_s"]) / (
        large["compiled_sql_s"] - small["compiled_sql_s"]
    )
    results["fixed_s"] = small["dbt_run_s"] - small["compiled_sql_s"] * results["marginal_ratio"]
    lines = [f"## Transforms: dbt against its compiled SQL ({FIRST} .. {LAST}, median of {args.repeats})", "",
             "| scale | flights | dbt run s | compiled SQL in DuckDB s | ratio | target | dbt build (with tests) s |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    for name, r in results["scales"].items():
        lines.append(f"| {name} | {r['flights']} | {r['dbt_run_s']:.2f} | {r['compiled_sql_s']:.2f} | "
                     f"{r['ratio']:.2f}x | see marginal | {r['dbt_build_s']:.2f} |")  # fmt: skip
    g = results["growth"]
    lines += ["", f"Marginal cost (what 10x the data adds): dbt run {results['marginal_ratio']:.2f}x the compiled "
              f"SQL's (target <= {TARGET_RATIO}x); dbt's fixed cost per invocation about {results['fixed_s']:.1f} s. "
              f"Cost growth from 1x to 10x, per unit of data (1.0 = linear): dbt run {g['dbt_run_s']:.2f}, "
              f"compiled SQL {g['compiled_sql_s']:.2f}, dbt build {g['dbt_build_s']:.2f}."]  # fmt: skip
    write_results(args.out, results, "\n".join(lines))


if __name__ == "__main__":
    main()
