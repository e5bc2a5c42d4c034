"""The benchmark report: one table of every ratio `make bench` measured (ours beside the baseline of
the same run, with DESIGN.md §6's target) and a PNG plot per benchmark, from bench/results/*.json.
A benchmark whose results are missing is listed as not run. Usage (after the benchmarks):

    .venv/bin/python -m bench.report [--results bench/results]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from pathlib import Path

BENCHMARKS = ("serving", "compute_planner", "batch_scale", "online_features", "transforms", "validation", "drift",
              "training_devices", "orchestration", "task_gap", "ingest_cost", "retrain_policy", "streaming",
              "training_quality")  # fmt: skip


def _load(folder: Path, name: str) -> dict | None:
    path = folder / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def rows(folder: Path) -> list[tuple[str, str, str, str, str]]:
    """(benchmark, ours, baseline, ratio, target) for each measured comparison."""
    out = []
    serving = _load(folder, "serving")
    if serving:
        o, b = serving["overhead"], serving["batching"]
        out.append(("serving overhead, 1 row p50", f"BentoML {o['bentoml']['p50_ms']:.2f} ms",
                    f"Starlette {o['starlette_uvicorn']['p50_ms']:.2f} ms",
                    f"+{o['ratios']['bentoml_added_p50_ms_vs_starlette']:.2f} ms", "<= +1 ms"))  # fmt: skip
        out.append(("serving throughput, 8 clients", f"{o['bentoml']['throughput_requests_per_s']:.0f} req/s",
                    f"{o['starlette_uvicorn']['throughput_requests_per_s']:.0f} req/s",
                    f"{o['ratios']['bentoml_throughput_share_of_starlette']:.0%}", ">= 50%"))  # fmt: skip
        out.append(("adaptive batching, 32 clients", f"{b['batched']['requests_per_s']:.0f} req/s",
                    f"{b['unbatched']['requests_per_s']:.0f} req/s unbatched",
                    f"{b['ratios']['throughput_batched_vs_unbatched']:.2f}x", ">= 2x at p99 <= 25 ms"))  # fmt: skip
        k = serving["kernel"]["batch_1"]
        out.append(("inference kernel, batch 1 p50", f"ORT {k['onnxruntime']['p50_ms'] * 1000:.0f} us",
                    f"inplace_predict {k['xgboost_inplace_predict']['p50_ms'] * 1000:.0f} us",
                    f"{k['ratio_ort_vs_inplace_p50']:.2f}x", "ORT <= 20 us"))  # fmt: skip
    planner = _load(folder, "compute_planner")
    if planner:
        worst = max(planner["sizes"].items(), key=lambda item: item[1]["ratio_to_best"])
        out.append(("compute planner, 1 to 1,000,000 rows", f"worst at {int(worst[0]):,} rows",
                    f"best fixed: {worst[1]['best']}", f"{worst[1]['ratio_to_best']:.2f}x", "<= 1.10x"))  # fmt: skip
        for factor, r in planner["throughput"].items():
            out.append((f"batch scoring core, {factor}x ({r['rows']:,} rows)",
                        f"{r['batch_rows_per_s']:,.0f} rows/s", f"inplace_predict {r['loop_rows_per_s']:,.0f} rows/s",
                        f"{r['ratio']:.2f}x", ">= 0.8x"))  # fmt: skip
    batch = _load(folder, "batch_scale")
    if batch:
        base = batch["factors"]["1"]
        for factor, r in batch["factors"].items():
            out.append((f"batch-score peak RSS, {factor}x ({r['scored']:,} items)",
                        f"{r['peak_rss_bytes'] / 1024**2:,.0f} MiB", f"1x {base['peak_rss_bytes'] / 1024**2:,.0f} MiB",
                        f"{r['peak_rss_bytes'] / base['peak_rss_bytes']:.2f}x",
                        f"< {batch['target_peak_bytes'] / 1024**3:.0f} GiB"))  # fmt: skip
    online = _load(folder, "online_features")
    if online:
        for size, r in online["sqlite"].items():
            out.append((f"online features (SQLite), {size} p99", f"Feast {r['feast']['p99_ms']:.2f} ms",
                        f"sqlite3 {r['raw']['p99_ms']:.3f} ms", f"{r['ratio_p99']:.1f}x",
                        "p99 <= 5 ms" if size == "1 rows" else "reported"))  # fmt: skip
    if online and "redis" in online:
        for size, r in online["redis"].items():
            out.append((f"online features (Redis), {size} p99", f"Feast {r['feast']['p99_ms']:.2f} ms",
                        f"redis-py {r['raw']['p99_ms']:.3f} ms", f"{r['ratio_p99']:.1f}x",
                        "p99 <= 5 ms" if size == "1 rows" else "reported"))  # fmt: skip
    transforms = _load(folder, "transforms")
    if transforms:
        for scale, r in transforms["scales"].items():
            out.append((f"transforms, dbt run, {scale} ({r['flights']:,} flights)", f"dbt {r['dbt_run_s']:.2f} s",
                        f"compiled SQL {r['compiled_sql_s']:.2f} s", f"{r['ratio']:.2f}x", "reported"))  # fmt: skip
        out.append(("transforms, marginal cost of 10x the data", "dbt run", "compiled SQL",
                    f"{transforms['marginal_ratio']:.2f}x", "<= 1.2x"))  # fmt: skip
        g = transforms["growth"]
        out.append(("transforms, cost growth 1x -> 10x data", f"dbt run {g['dbt_run_s']:.2f}",
                    f"compiled SQL {g['compiled_sql_s']:.2f}", "-", "1.0 = linear"))  # fmt: skip
    validation = _load(folder, "validation")
    if validation:
        for size, r in validation["sizes"].items():
            out.append((f"validation, raw_flights suite, {int(size):,} rows", f"GX {r['gx_s']:.2f} s",
                        f"pandas {r['pandas_s']:.2f} s", f"{r['ratio']:.1f}x", "<= 3x"))  # fmt: skip
        g = validation["growth"]
        out.append(("validation, cost growth 100k -> 1M rows", f"GX {g['gx_s']:.2f}", f"pandas {g['pandas_s']:.2f}",
                    "-", "1.0 = linear"))  # fmt: skip
    drift = _load(folder, "drift")
    if drift:
        ks = drift["ks"]
        out.append(("drift KS, 20 features", f"alibi-detect {ks['alibi_ms']:.1f} ms", f"scipy {ks['scipy_ms']:.1f} ms",
                    f"{ks['ratio']:.2f}x", "<= 1.2x"))  # fmt: skip
        for m in drift["mmd"]:
            out.append((f"drift MMD, {m['rows_per_side']} rows a side", f"alibi-detect {m['alibi_ms']:.0f} ms",
                        f"numpy {m['numpy_ms']:.0f} ms", f"{m['ratio']:.2f}x", "curve reported"))  # fmt: skip
    devices = _load(folder, "training_devices")
    if devices:
        for family, runs in devices["families"].items():
            cuda = runs.get("cuda")
            out.append((f"training {family}, {devices['rows']:,} rows",
                        f"CUDA {cuda['fit_seconds']:.2f} s" if cuda else "no GPU here",
                        f"CPU {runs['cpu']['fit_seconds']:.2f} s",
                        f"{runs['speedup']:.2f}x" if cuda else "-", "GPU >= 4x at 1M rows"))  # fmt: skip
    orchestration = _load(folder, "orchestration")
    if orchestration:
        worst = max(orchestration["dags"].items(), key=lambda item: item[1]["parse_s"])
        out.append(("DAG file parse time (slowest file)", f"{worst[0]} {worst[1]['parse_s']:.3f} s",
                    f"import airflow.sdk {orchestration['baseline_import_airflow_sdk_s']:.3f} s", "-",
                    "parse <= 0.5 s"))  # fmt: skip
    gap = _load(folder, "task_gap")
    if gap:
        (mine, ours), (_, default) = gap["sleeps"].items()
        out.append((f"task boundary ({gap['executor']}), p50", f"{ours['gap_p50_s']:.2f} s (idle sleep {mine} s)",
                    f"{default['gap_p50_s']:.2f} s (Airflow's default 1 s)",
                    f"{ours['gap_p50_s'] / default['gap_p50_s']:.2f}x", "reported"))  # fmt: skip
    ingest = _load(folder, "ingest_cost")
    if ingest:
        for r in ingest["sizes"]:
            warm = sum(r["warm_s"].values())
            for name, path in (("LocalExecutor", r["local"]), ("CeleryExecutor", r["celery"])):
                if path:
                    day = path.get("per_day_s", path["day_s"])  # results from before per_day_s: a run's span
                    out.append((f"ingest day through {name}, {r['factor']}x", f"{day:.1f} s",
                                f"stages warm in one process {warm:.1f} s", f"{day / warm:.1f}x",
                                "<= 3x"))  # fmt: skip
        ranged = ingest.get("ranges")
        if ranged:  # JSON keys: the ranges' day counts as strings
            (short, b_short), (long, b_long) = sorted(ranged["backfill_dag"].items(), key=lambda kv: int(kv[0]))
            out.append((f"{long}-day backfill through the scheduler (backfill DAG)", f"{b_long['wall_s']:.0f} s",
                        f"{short} days {b_short['wall_s']:.0f} s", f"{b_long['wall_s'] / b_short['wall_s']:.2f}x",
                        "<= 300 s"))  # fmt: skip
    policy = _load(folder, "retrain_policy")
    if policy:
        shipped, naive = policy["shipped"], policy["naive"]
        out.append(("retraining policy, null pairs alarming", f"{shipped['null']['false_alarm_pairs']} of 20",
                    f"naive {naive['null']['false_alarm_pairs']} of 20", "-", "reported"))  # fmt: skip
        out.append(("retraining policy, log loss Apr-Aug",
                    f"{shipped['replay']['served_log_loss']:.4f}", f"never retrained "
                    f"{shipped['replay']['stale_log_loss']:.4f}", "-", "reported"))  # fmt: skip
    streaming = _load(folder, "streaming")
    if streaming:
        ours, bare = streaming["platform"], streaming["bare"]
        for name in (n for n in ours if n.startswith("freshness_")):
            o, b = ours[name], bare[name]
            out.append((f"stream freshness, {o['rate']:,.0f} events/s, p99", f"processor {o['p99_ms']:.1f} ms",
                        f"bare client {b['p99_ms']:.1f} ms", f"{o['p99_ms'] / b['p99_ms']:.1f}x",
                        "p99 <= 250 ms" if o["rate"] == 1000 else "reported"))  # fmt: skip
        for name in (n for n in ours if n.startswith("throughput_")):
            o, b = ours[name], bare[name]
            out.append((f"stream throughput, {o['events']:,} events", f"{o['events_per_s']:,.0f} events/s",
                        f"bare client {b['events_per_s']:,.0f} events/s",
                        f"{o['events_per_s'] / b['events_per_s']:.2f}x", "reported"))  # fmt: skip
    quality = _load(folder, "training_quality")
    if quality and {"start_of_day", "PT2H"} <= set(quality["modes"]):

        def champion(mode):
            return next(c for c in quality["modes"][mode]["candidates"] if c["family"] == "xgboost")

        late, early = champion("PT2H"), champion("start_of_day")
        out.append(("model quality, April, XGBoost ROC AUC", f"departure - 2 h {late['roc_auc']:.4f}",
                    f"start of day {early['roc_auc']:.4f}", f"{late['roc_auc'] - early['roc_auc']:+.4f}",
                    ">= 0.66 at 2 h"))  # fmt: skip
        out.append(("model quality, April, XGBoost log loss", f"departure - 2 h {late['log_loss']:.4f}",
                    f"start of day {early['log_loss']:.4f}", f"{late['log_loss'] - early['log_loss']:+.4f}",
                    "<= 0.57 at 2 h"))  # fmt: skip
    return out


def plots(folder: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []

    def save(fig, ax, name: str, title: str, ylabel: str) -> None:
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.legend()
        path = folder / f"{name}.png"
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)

    serving = _load(folder, "serving")
    if serving:
        o = serving["overhead"]
        names = ["in_process_session_run", "starlette_uvicorn", "bentoml"]
        fig, ax = plt.subplots(figsize=(6, 3.2))
        ax.bar(["session.run", "Starlette", "BentoML"], [o[n]["p50_ms"] for n in names], label="p50")
        ax.bar(["session.run", "Starlette", "BentoML"], [o[n]["p99_ms"] - o[n]["p50_ms"] for n in names],
               bottom=[o[n]["p50_ms"] for n in names], alpha=0.4, label="p99")  # fmt: skip
        save(fig, ax, "serving", "Serving overhead", "ms per one-row request")
    online = _load(folder, "online_features")
    if online:
        sizes = list(online["sqlite"])
        fig, ax = plt.subplots(figsize=(6, 3.2))
        for i, (who, key) in enumerate((("Feast", "feast"), ("sqlite3", "raw"))):
            ax.bar([j + i * 0.4 for j in range(len(sizes))], [online["sqlite"][s][key]["p99_ms"] for s in sizes],
                   width=0.4, label=who)  # fmt: skip
        ax.set_xticks([j + 0.2 for j in range(len(sizes))], sizes)
        save(fig, ax, "online_features", "Online feature reads (SQLite)", "p99 ms")
    drift = _load(folder, "drift")
    if drift:
        fig, ax = plt.subplots(figsize=(6, 3.2))
        rows_per_side = [m["rows_per_side"] for m in drift["mmd"]]
        ax.plot(rows_per_side, [m["alibi_ms"] for m in drift["mmd"]], marker="o", label="alibi-detect MMDDrift")
        ax.plot(rows_per_side, [m["numpy_ms"] for m in drift["mmd"]], marker="o", label="numpy")
        ax.set_xlabel("rows a side")
        save(fig, ax, "drift_mmd", "MMD drift test: cost against window size", "ms (100 permutations)")
    growth = [(name, label, keys) for name, label, keys in (
        ("transforms", "scale", (("dbt_run_s", "dbt run"), ("compiled_sql_s", "compiled SQL"))),
        ("validation", "sizes", (("gx_s", "GX checkpoint"), ("pandas_s", "pandas"))),
    ) if _load(folder, name)]  # fmt: skip
    for name, label, keys in growth:
        data = _load(folder, name)["scales" if label == "scale" else "sizes"]
        fig, ax = plt.subplots(figsize=(6, 3.2))
        for key, who in keys:
            ax.plot(list(data), [r[key] for r in data.values()], marker="o", label=who)
        ax.set_xlabel("data size")
        save(fig, ax, f"{name}_growth", f"{name.capitalize()}: cost against data size", "seconds")
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=Path, default=Path("bench/results"))
    args = parser.parse_args()
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    lines = [f"# Benchmarks ({machine})", "", "| benchmark | ours | baseline (same run) | ratio | target |",
             "|---|---|---|---|---|"]  # fmt: skip
    lines += [f"| {' | '.join(r)} |" for r in rows(args.results)]
    missing = [n for n in BENCHMARKS if not (args.results / f"{n}.json").exists()]
    if missing:
        lines += ["", f"Not run: {', '.join(missing)}."]
    lines += ["", *(f"![{p.stem}]({p.name})" for p in plots(args.results))]
    lines += ["", "Each benchmark's own table: " + ", ".join(sorted(p.name for p in args.results.glob("*.md")
                                                                     if p.name != "README.md"))]  # fmt: skip
    (args.results / "README.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
