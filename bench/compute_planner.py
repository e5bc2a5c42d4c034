"""The compute planner against every fixed choice, and batch scoring against a plain booster loop, in one run.

1. Planner vs fixed: for batch sizes 1 to 1,000,000 rows, the wall time of each fixed option (ONNX Runtime on one
   thread and on every core, XGBoost `inplace_predict` on the CPU and, with a GPU, on CUDA), each fed the whole batch
   in one call, beside the time of what the planner chose from this machine's calibration (its option, in its
   calls). Target: within 10% of the best fixed choice at every size.
2. Batch throughput: rows per second of the batch path's scoring (the planner's predictor, the answers checked as
   the service checks them) at a day of flights at 1x, 10x and 100x (about 900, 9,000 and 90,000 rows), beside a
   plain `inplace_predict` loop over the same rows. Target: at least 0.8x of the loop.

3. cpu-small: the platform's MLP trainer on the same rows, its ONNX graph beside its dynamic int8 quantisation:
   bytes, one-row latency, the largest difference on 2,000 rows and the parity gate's verdict.

The model is the platform's XGBoost trainer fitted on synthetic rows of the flights model's width (23 features),
as `platform calibrate` fits it; the calibration is measured first, in the same run. Usage:

    .venv/bin/python -m bench.compute_planner [--out bench/results/compute_planner.json]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from bench import write_results
from pipelines.compute import planner
from pipelines.settings import load_settings

SIZES = (1, 10, 100, 1_000, 10_000, 100_000, 1_000_000)
DAY_ROWS = 900  # flights of a January day, about


def _wall(call, repeats: int) -> float:
    """The best of `repeats` wall times of `call()` (after a warm-up): the machine's cost, not its noise."""
    call()
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - started)
    return best


def _interleaved(first, second, rounds: int) -> tuple[float, float]:
    """The best wall times of two calls timed in turn, so that the machine's drift (a shared VM) falls on both."""
    first(), second()
    best = [float("inf"), float("inf")]
    for _ in range(rounds):
        for i, call in enumerate((first, second)):
            started = time.perf_counter()
            call()
            best[i] = min(best[i], time.perf_counter() - started)
    return best[0], best[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("bench/results/compute_planner.json"))
    args = parser.parse_args()

    from pipelines.export.onnx import OnnxScorer
    from serving.model import checked_predictions

    settings = load_settings(data_root=Path(tempfile.mkdtemp()) / "var")
    calibration = planner.calibrate(settings)
    data = planner.synthetic_rows(max(SIZES))
    trained = planner.reference_model(data)
    x = np.ascontiguousarray(data[0], dtype=np.float32)

    calls = {}
    for option in planner.options(calibration.hardware):
        if option.runtime == planner.ONNXRUNTIME:
            calls[option.key] = OnnxScorer(trained.onnx, trained.onnx_output, threads=option.threads).predict
        else:
            booster = trained.model.get_booster().copy()
            booster.set_param({"device": option.device, "nthread": option.threads})
            calls[option.key] = booster.inplace_predict

    rows, results = [], {"calibration": calibration.__dict__, "sizes": {}, "throughput": {}}
    for n in SIZES:
        repeats = 20 if n <= 10_000 else 3
        fixed = {key: _wall(lambda c=call, n=n: c(x[:n]), repeats) for key, call in calls.items()}
        plan = planner.plan_scoring(calibration, n, planner.CALIBRATION_FEATURES)
        chosen = calls[f"{plan.runtime}/{plan.device}/{plan.threads}"]

        def planned(chosen=chosen, plan=plan, n=n):  # as the batch path's predictor calls it
            if n <= plan.call_rows:
                return chosen(x[:n])
            return [chosen(x[i : min(i + plan.call_rows, n)]) for i in range(0, n, plan.call_rows)]

        seconds = _wall(planned, repeats)
        best = min(fixed, key=fixed.get)
        ratio = seconds / fixed[best]
        results["sizes"][n] = {"fixed_s": fixed, "planner_s": seconds, "plan": plan.as_dict(), "best": best,
                               "ratio_to_best": ratio}  # fmt: skip
        cells = " | ".join(f"{fixed[k] * 1000:.3g}" for k in calls)
        rows.append(f"| {n:,} | {cells} | {plan.runtime}/{plan.device}/{plan.threads} x {plan.call_rows:,} | "
                    f"{seconds * 1000:.3g} | {ratio:.2f} |")  # fmt: skip

    loop_rows = []
    booster = trained.model.get_booster()
    for factor in (1, 10, 100):
        n = DAY_ROWS * factor
        plan = planner.plan_scoring(calibration, n, planner.CALIBRATION_FEATURES)
        chosen = calls[f"{plan.runtime}/{plan.device}/{plan.threads}"]

        def batch(chosen=chosen, plan=plan, n=n):
            parts = [np.asarray(chosen(x[i : min(i + plan.call_rows, n)])) for i in range(0, n, plan.call_rows)]
            return checked_predictions(np.concatenate(parts), n, "binary_classification")

        plain, mine = _interleaved(lambda n=n: booster.inplace_predict(x[:n]), batch, 10)
        results["throughput"][factor] = {"rows": n, "batch_rows_per_s": n / mine, "loop_rows_per_s": n / plain,
                                         "ratio": plain / mine, "plan": plan.as_dict()}  # fmt: skip
        loop_rows.append(f"| {factor}x | {n:,} | {n / mine:,.0f} | {n / plain:,.0f} | {plain / mine:.2f} |")

    # cpu-small: the platform's MLP trainer on the same rows, its float graph beside its int8 one
    from pipelines.compute.quantize import cpu_small
    from pipelines.training.trainers import train_mlp
    from pipelines.usecases.spec import HYPERPARAMETERS

    mlp_data = planner.training_data(data, 20_000)
    mlp = train_mlp(mlp_data, HYPERPARAMETERS["mlp"], seed=0, device="cpu")
    verdict, _ = cpu_small(mlp.onnx, mlp.onnx_output, x[:2000])
    results["cpu_small"] = verdict.as_dict()
    small = [
        f"| float (default) | {verdict.float_bytes:,} | {verdict.float_p50_ms * 1000:.1f} | | |",
        f"| int8 (cpu-small) | {verdict.int8_bytes:,} | {verdict.int8_p50_ms * 1000:.1f} | {verdict.parity:.3g} | "
        f"{'accepted' if verdict.accepted else 'refused'} at {verdict.tolerance:g} |",
    ]

    header = " | ".join(f"{k} ms" for k in calls)
    table = "\n".join([
        f"Planner against each fixed choice (one call of the whole batch), {calibration.hardware['cpu']}, "
        f"{calibration.hardware['cores']} cores, CUDA: {calibration.hardware['cuda'] or 'none'}",
        "",
        f"| rows | {header} | planner's choice x rows per call | planner ms | planner / best fixed |",
        "|" + "---|" * (len(calls) + 4),
        *rows,
        "",
        "Batch scoring (planned, answers checked) against a plain `inplace_predict` over the same rows",
        "",
        "| data | rows | batch rows/s | plain loop rows/s | batch / loop |",
        "|---|---|---|---|---|",
        *loop_rows,
        "",
        "cpu-small: the MLP's ONNX graph, float and dynamic int8, one-row latency and parity on 2,000 rows",
        "",
        "| graph | bytes | one-row p50 us | largest difference | verdict |",
        "|---|---|---|---|---|",
        *small,
    ])  # fmt: skip
    write_results(args.out, results, table)


if __name__ == "__main__":
    main()
