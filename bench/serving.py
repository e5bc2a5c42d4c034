"""Serving benchmarks (DESIGN.md §6), every figure beside its baseline from the same run:

1. overhead: one-row requests to a BentoML endpoint vs bare uvicorn+Starlette with the same ORT
   session vs in-process `session.run` (p50/p99 latency, sequential; throughput with 8 clients);
2. adaptive batching: the same BentoML endpoint with and without batching under 32 concurrent
   one-row clients (throughput, p99, and requests shed with 503);
3. inference kernel: ORT vs XGBoost `inplace_predict` and `predict` at batch 1 / 100 / 10,000.

The model is the platform's XGBoost trainer fitted on synthetic data of the flights model's shape
(20 features): the bench needs no landed data. Usage:

    .venv/bin/python -m bench.serving [--out bench/results/serving.json] [--seconds 5]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np

from bench import write_results
from pipelines.processes import port_open, stop

FEATURES = 20
ROW = [0.5] * FEATURES
CLIENTS = 32  # concurrent one-row clients of the batching comparison


def train_model(rows: int = 20_000, seed: int = 7):
    """The platform's XGBoost trainer on synthetic flights-shaped data: (TrainedModel, holdout features)."""
    import pandas as pd

    from pipelines.training.dataset import TrainingData, TrainingWindow
    from pipelines.training.trainers import train_xgboost
    from pipelines.usecases.spec import HYPERPARAMETERS

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, FEATURES)).astype(np.float32)
    y = (x[:, 0] + 0.5 * x[:, 1] * x[:, 2] + rng.normal(scale=1.0, size=rows) > 0.8).astype(int)
    window = TrainingWindow.ending(dt.date(2013, 1, 10), 8, 1, 1)
    days = [window.train_start + dt.timedelta(days=int(d)) for d in rng.integers(0, 10, rows)]
    names = [f"f{i}" for i in range(FEATURES)]
    frame = pd.DataFrame(x, columns=names).assign(label=y, split=[window.split_of(d) for d in days])
    data = TrainingData(frame, names, window, "label", "id", "binary_classification")
    trained = train_xgboost(data, HYPERPARAMETERS["xgboost"], seed=seed, device="cpu")
    return trained, x


def percentiles(samples: list[float]) -> dict[str, float]:
    return {"p50_ms": float(np.percentile(samples, 50)), "p99_ms": float(np.percentile(samples, 99))}


def sequential(call, n: int = 400) -> dict[str, float]:
    for _ in range(30):
        call()
    times = []
    for _ in range(n):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return percentiles(times)


def concurrent(url: str, body: dict, clients: int, seconds: float) -> dict[str, float]:
    """`clients` threads posting `body` for `seconds`: requests per second and latency percentiles."""
    latencies: list[float] = []
    errors = [0]
    deadline = time.monotonic() + seconds

    def worker() -> None:
        with httpx.Client(timeout=30) as client:
            while time.monotonic() < deadline:
                started = time.perf_counter()
                ok = client.post(url, json=body).status_code == 200
                if ok:
                    latencies.append((time.perf_counter() - started) * 1000)
                else:
                    errors[0] += 1

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"requests_per_s": len(latencies) / seconds, "errors": errors[0], **percentiles(latencies)}


@contextlib.contextmanager
def server(args: list[str], port: int, env: dict, log: Path):
    with log.open("w") as out:
        process = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while not port_open(port):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{args[0]} did not start; see {log}")
            time.sleep(0.2)
        time.sleep(1.0)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(process)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("bench/results/serving.json"))
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each throughput run")
    args = parser.parse_args()
    import xgboost as xgb

    from pipelines.export.onnx import OnnxScorer

    trained, x = train_model()
    work = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    onnx_path = work / "model.onnx"
    onnx_path.write_bytes(trained.onnx)
    env = {**os.environ, "BENCH_ONNX": str(onnx_path), "BENTOML_HOME": str(work / "bentoml"),
           "BENTOML_DO_NOT_TRACK": "True"}  # fmt: skip
    bin_dir = Path(sys.executable).parent
    results: dict = {"machine": {"cpus": os.cpu_count()}, "trees": trained.params["best_iteration"] + 1}

    scorer = OnnxScorer(trained.onnx, trained.onnx_output)
    one = np.asarray([ROW], dtype=np.float32)
    body = {"rows": [ROW]}
    overhead = {"in_process_session_run": sequential(lambda: scorer.predict(one), n=2000)}
    for name, cmd, port in (
        ("starlette_uvicorn", [str(bin_dir / "uvicorn"), "bench.serving_apps:starlette_app", "--port", "3101",
                               "--log-level", "warning"], 3101),
        ("bentoml", [str(bin_dir / "bentoml"), "serve", "bench.serving_apps:Plain", "--port", "3102"], 3102),
    ):  # fmt: skip
        with server(cmd, port, env, work / f"{name}.log") as base, httpx.Client(base_url=base) as client:
            overhead[name] = sequential(lambda c=client: c.post("/score", json=body).raise_for_status())
            overhead[name].update(
                {f"throughput_{k}": v for k, v in concurrent(f"{base}/score", body, 8, args.seconds).items()}
            )
    bare, bento = overhead["starlette_uvicorn"], overhead["bentoml"]
    overhead["ratios"] = {
        "bentoml_added_p50_ms_vs_starlette": bento["p50_ms"] - bare["p50_ms"],
        "bentoml_p50_vs_starlette": bento["p50_ms"] / bare["p50_ms"],
        "bentoml_throughput_share_of_starlette": bento["throughput_requests_per_s"] / bare["throughput_requests_per_s"],
        "starlette_added_p50_ms_vs_in_process": bare["p50_ms"] - overhead["in_process_session_run"]["p50_ms"],
    }
    results["overhead"] = overhead

    batching = {}
    for name, service, port in (("unbatched", "Plain", 3103), ("batched", "Batched", 3104)):
        cmd = [str(bin_dir / "bentoml"), "serve", f"bench.serving_apps:{service}", "--port", str(port)]
        with server(cmd, port, env, work / f"{name}.log") as base:
            batching[name] = concurrent(f"{base}/score", body, CLIENTS, args.seconds)
    batching["ratios"] = {
        "throughput_batched_vs_unbatched": batching["batched"]["requests_per_s"]
        / batching["unbatched"]["requests_per_s"],
        "p99_batched_vs_unbatched": batching["batched"]["p99_ms"] / batching["unbatched"]["p99_ms"],
    }
    results["batching"] = batching

    booster = trained.model.get_booster()
    kernel = {}
    for size in (1, 100, 10_000):
        batch = np.ascontiguousarray(x[:size])
        n = 2000 if size == 1 else 300 if size == 100 else 20
        ort = sequential(lambda b=batch: scorer.predict(b), n=n)
        inplace = sequential(lambda b=batch: booster.inplace_predict(b), n=n)
        dmatrix = sequential(lambda b=batch: booster.predict(xgb.DMatrix(b)), n=n)
        kernel[f"batch_{size}"] = {
            "onnxruntime": ort, "xgboost_inplace_predict": inplace, "xgboost_predict_dmatrix": dmatrix,
            "ratio_ort_vs_inplace_p50": ort["p50_ms"] / inplace["p50_ms"],
            "ratio_ort_vs_dmatrix_p50": ort["p50_ms"] / dmatrix["p50_ms"],
        }  # fmt: skip
    results["kernel"] = kernel

    write_results(args.out, results, render(results))
    print(f"\nwritten: {args.out} and {args.out.with_suffix('.md')}")


def render(r: dict) -> str:
    o, b, k = r["overhead"], r["batching"], r["kernel"]
    lines = [
        f"## Serving (XGBoost, {r['trees']} trees, {FEATURES} features; {r['machine']['cpus']} CPUs)",
        "",
        "| one-row scoring | p50 ms | p99 ms | req/s (8 clients) |",
        "|---|---|---|---|",
        f"| in-process `session.run` | {o['in_process_session_run']['p50_ms']:.3f} | "
        f"{o['in_process_session_run']['p99_ms']:.3f} | |",
    ]
    for name in ("starlette_uvicorn", "bentoml"):
        m = o[name]
        lines.append(f"| {name} | {m['p50_ms']:.2f} | {m['p99_ms']:.2f} | {m['throughput_requests_per_s']:.0f} |")
    ratios = o["ratios"]
    lines += [
        "",
        f"BentoML adds {ratios['bentoml_added_p50_ms_vs_starlette']:.2f} ms at p50 over bare Starlette "
        f"({ratios['bentoml_p50_vs_starlette']:.2f}x) and reaches "
        f"{ratios['bentoml_throughput_share_of_starlette']:.0%} of its throughput; Starlette adds "
        f"{ratios['starlette_added_p50_ms_vs_in_process']:.2f} ms over in-process.",
        "",
        f"| {CLIENTS} concurrent one-row clients | req/s | p50 ms | p99 ms | errors |",
        "|---|---|---|---|---|",
    ]
    for name in ("unbatched", "batched"):
        m = b[name]
        lines.append(
            f"| BentoML {name} | {m['requests_per_s']:.0f} | {m['p50_ms']:.1f} | {m['p99_ms']:.1f} | {m['errors']} |"
        )
    lines += [
        "",
        f"Adaptive batching: {b['ratios']['throughput_batched_vs_unbatched']:.2f}x the throughput, "
        f"p99 {b['ratios']['p99_batched_vs_unbatched']:.2f}x.",
        "",
        "| batch | ORT p50 ms | xgboost inplace_predict p50 ms | xgboost predict(DMatrix) p50 ms | ORT / inplace |",
        "|---|---|---|---|---|",
    ]
    for size, m in k.items():
        lines.append(
            f"| {size.removeprefix('batch_')} | {m['onnxruntime']['p50_ms']:.4f} | "
            f"{m['xgboost_inplace_predict']['p50_ms']:.4f} | {m['xgboost_predict_dmatrix']['p50_ms']:.4f} | "
            f"{m['ratio_ort_vs_inplace_p50']:.2f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
