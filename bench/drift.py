"""Drift detection (DESIGN.md §6): alibi-detect beside plain scipy / numpy on the same windows, in
the same run. Runs in the drift virtualenv (alibi-detect needs numpy < 2):

- KS: `KSDrift(...).predict` (Bonferroni over the features, as the monitoring DAG runs it) against a
  loop of `scipy.stats.ks_2samp` over the same columns; the p-values are compared too;
- MMD: `MMDDrift` (PyTorch backend, 100 permutations, Gaussian kernel with the median-heuristic
  bandwidth, as the DAG runs it) against the same unbiased MMD² and permutation test in numpy, at
  100 to 1,000 rows a side: the cost curve.

The windows are synthetic with the model's shape (20 features; the current window shifted by 0.2
standard deviations in three of them): a 5,000-row reference (the size registered with a model)
and a day of 1,000 flights. Usage (about a minute on 2 cores):

    .venv-drift/bin/python -m bench.drift [--out bench/results/drift.json]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from bench import write_results

FEATURES = 20
P_VALUE = 0.05
PERMUTATIONS = 100


def windows(reference_rows: int, current_rows: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    ref = rng.normal(size=(reference_rows, FEATURES)).astype(np.float32)
    cur = rng.normal(size=(current_rows, FEATURES)).astype(np.float32)
    cur[:, :3] += 0.2
    return ref, cur


def best_of(call, repeats: int) -> tuple[float, object]:
    """The fastest of `repeats` calls in ms (the machine is shared) and the last result."""
    times, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = call()
        times.append((time.perf_counter() - started) * 1000)
    return min(times), result


def ks_scipy(ref: np.ndarray, cur: np.ndarray) -> np.ndarray:
    from scipy.stats import ks_2samp

    return np.array([ks_2samp(ref[:, j], cur[:, j]).pvalue for j in range(ref.shape[1])])


def mmd_numpy(ref: np.ndarray, cur: np.ndarray, permutations: int, seed: int = 0) -> tuple[float, float]:
    """Unbiased MMD² with a Gaussian kernel (bandwidth: median pairwise distance between the windows)
    and its permutation p-value, on one kernel matrix of the pooled rows."""
    pooled = np.concatenate([ref, cur]).astype(np.float64)
    squared = (pooled**2).sum(1)
    distances = np.maximum(squared[:, None] + squared[None, :] - 2 * pooled @ pooled.T, 0)
    n = len(ref)
    sigma = np.sqrt(np.median(distances[:n, n:]) / 2)
    kernel = np.exp(-distances / (2 * sigma**2))

    def mmd2(index: np.ndarray) -> float:
        x, y = index[:n], index[n:]
        kxx, kyy, kxy = kernel[np.ix_(x, x)], kernel[np.ix_(y, y)], kernel[np.ix_(x, y)]
        m = len(y)
        return ((kxx.sum() - np.trace(kxx)) / (n * (n - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
                - 2 * kxy.mean())  # fmt: skip

    rng = np.random.default_rng(seed)
    observed = mmd2(np.arange(len(pooled)))
    null = [mmd2(rng.permutation(len(pooled))) for _ in range(permutations)]
    return observed, float((np.asarray(null) >= observed).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("bench/results/drift.json"))
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    from alibi_detect.cd import KSDrift, MMDDrift

    ref, cur = windows(5000, 1000)
    detector = KSDrift(ref, p_val=P_VALUE, correction="bonferroni")
    alibi_ms, answer = best_of(lambda: detector.predict(cur, drift_type="feature", return_p_val=True), args.repeats)
    scipy_ms, p_scipy = best_of(lambda: ks_scipy(ref, cur), args.repeats)
    p_alibi = np.asarray(answer["data"]["p_val"], dtype=float)
    ks = {"reference_rows": len(ref), "current_rows": len(cur), "features": FEATURES,
          "alibi_ms": alibi_ms, "scipy_ms": scipy_ms, "ratio": alibi_ms / scipy_ms,
          "max_p_value_difference": float(np.max(np.abs(p_alibi - p_scipy)))}  # fmt: skip
    print(f"KS {FEATURES} features, 5000 vs 1000 rows: alibi {alibi_ms:.1f} ms, scipy loop {scipy_ms:.1f} ms "
          f"({ks['ratio']:.2f}x); p-values differ by at most {ks['max_p_value_difference']:.2g}")  # fmt: skip

    mmd = []
    for rows in (100, 250, 500, 1000):
        a, b = windows(rows, rows, seed=rows)
        # alibi builds its kernel from the reference at construction: both sides are timed whole
        alibi_ms, answer = best_of(lambda a=a, b=b: MMDDrift(a, backend="pytorch", p_val=P_VALUE,
                                   n_permutations=PERMUTATIONS).predict(b), max(1, args.repeats // 2))  # fmt: skip
        numpy_ms, (statistic, p_value) = best_of(lambda a=a, b=b: mmd_numpy(a, b, PERMUTATIONS),
                                                 max(1, args.repeats // 2))  # fmt: skip
        mmd.append({"rows_per_side": rows, "alibi_ms": alibi_ms, "numpy_ms": numpy_ms, "ratio": alibi_ms / numpy_ms,
                    "alibi_mmd2": float(answer["data"]["distance"]), "numpy_mmd2": statistic,
                    "alibi_p": float(answer["data"]["p_val"]), "numpy_p": p_value})  # fmt: skip
        print(f"MMD {rows:>4} rows a side: alibi {alibi_ms:.0f} ms, numpy {numpy_ms:.0f} ms "
              f"({alibi_ms / numpy_ms:.2f}x); MMD² {mmd[-1]['alibi_mmd2']:.4f} vs {statistic:.4f}")  # fmt: skip

    results = {"ks": ks, "mmd": mmd}
    lines = ["## Drift detection: alibi-detect beside scipy / numpy", "",
             "| test | rows | alibi-detect ms | baseline ms | ratio |", "|---|---|---|---|---|",
             f"| KS, {FEATURES} features, Bonferroni | 5000 vs 1000 | {ks['alibi_ms']:.1f} | {ks['scipy_ms']:.1f} "
             f"(scipy loop) | {ks['ratio']:.2f}x |"]  # fmt: skip
    lines += [f"| MMD, {PERMUTATIONS} permutations | {m['rows_per_side']} a side | {m['alibi_ms']:.0f} | "
              f"{m['numpy_ms']:.0f} (numpy) | {m['ratio']:.2f}x |" for m in mmd]  # fmt: skip
    write_results(args.out, results, "\n".join(lines))


if __name__ == "__main__":
    main()
