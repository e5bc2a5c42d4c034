"""Drift detectors, run in the drift virtualenv (alibi-detect needs numpy < 2): this module imports
only numpy, pandas and alibi-detect, never the rest of `pipelines`.

    .venv-drift/bin/python -m pipelines.monitoring.detect REFERENCE CURRENT CONFIG OUT
    .venv-drift/bin/python -m pipelines.monitoring.detect --serve

reads the reference sample and the current window (Parquet, same columns), the detector
configuration (JSON, built with the model), and writes the report (JSON). `--serve` keeps one
process for many windows (alibi-detect's import alone takes about 10 s): it reads one JSON request
per line on stdin, `{"folder": ..., "multivariate": true}` for the files reference.parquet,
current.parquet and config.json of that folder, writes drift.json there and answers one line,
`{"ok": true}` or `{"error": "..."}`. The report holds:
- per numeric feature: alibi-detect KSDrift (two-sample KS, Bonferroni-corrected across features):
  statistic, p-value, whether it is significant, and its excess over the feature's natural drift;
- per categorical column: ChiSquareDrift on the category counts;
- multivariate: MMDDrift (PyTorch backend) on at most MMD_ROWS rows a side, standardised features;
- predictions: KS of the model's probabilities against its reference predictions.
"""

from __future__ import annotations

import json
import sys

MMD_ROWS = 500
P_VALUE = 0.05


def detect(reference, current, config: dict, seed: int = 0, multivariate: bool = True) -> dict:
    """`multivariate=False` skips MMD (about 0.3 s a window on 2 cores), which the retraining
    policy does not read: the backtest replays hundreds of windows."""
    import numpy as np
    from alibi_detect.cd import ChiSquareDrift, KSDrift

    features = config["features"]
    ref = reference[features].to_numpy(dtype=np.float32)
    cur = current[features].to_numpy(dtype=np.float32)
    median = np.nanmedian(ref, axis=0)
    median = np.where(np.isfinite(median), median, 0.0)
    ref = np.where(np.isfinite(ref), ref, median)  # the models impute inside too; KS needs no NaN
    cur = np.where(np.isfinite(cur), cur, median)

    ks = KSDrift(ref, p_val=P_VALUE, correction="bonferroni").predict(cur, drift_type="feature", return_p_val=True)
    numeric = {}
    for j, name in enumerate(features):
        statistic = float(ks["data"]["distance"][j])
        natural = float(config["natural_drift"].get(name, 0.0))
        numeric[name] = {
            "ks": statistic,
            "p_value": float(ks["data"]["p_val"][j]),
            "significant": bool(ks["data"]["is_drift"][j]),
            "natural": natural,
            "excess": max(statistic - natural, 0.0),
            "weight": float(config["weights"].get(name, 0.0)),
        }

    categorical = {}
    for name in config["categorical"]:
        codes = {c: i for i, c in enumerate(config["categories"][name])}
        ref_codes, cur_codes = ([[codes.get(str(v), len(codes))] for v in side[name]] for side in (reference, current))
        result = ChiSquareDrift(np.array(ref_codes), p_val=P_VALUE).predict(np.array(cur_codes))
        seen = current[name].astype(str)
        categorical[name] = {
            "p_value": float(np.atleast_1d(result["data"]["p_val"])[0]),
            "significant": bool(result["data"]["is_drift"]),
            "unseen_share": float((~seen.isin(list(codes))).mean()),
        }

    from scipy.stats import ks_2samp

    predictions = ks_2samp(current["prediction"].to_numpy(float), reference["prediction"].to_numpy(float))
    natural = float(config["natural_drift"].get("prediction", 0.0))
    return {
        "rows": {"reference": len(reference), "current": len(current)},
        "numeric": numeric,
        "categorical": categorical,
        "multivariate": _mmd(ref, cur, median, seed) if multivariate else None,
        "predictions": {
            "ks": float(predictions.statistic),
            "p_value": float(predictions.pvalue),
            "natural": natural,
            "excess": max(float(predictions.statistic) - natural, 0.0),
            "mean_reference": float(reference["prediction"].mean()),
            "mean_current": float(current["prediction"].mean()),
        },
    }


def _mmd(ref, cur, median, seed: int) -> dict:
    """MMDDrift on at most MMD_ROWS rows a side, standardised by the reference."""
    import numpy as np
    from alibi_detect.cd import MMDDrift

    rng = np.random.default_rng(seed)
    scale = ref.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    pick = lambda x: x[rng.choice(len(x), min(MMD_ROWS, len(x)), replace=False)]  # noqa: E731
    a, b = (pick(ref) - median) / scale, (pick(cur) - median) / scale
    mmd = MMDDrift(a.astype(np.float32), backend="pytorch", p_val=P_VALUE, n_permutations=100).predict(
        b.astype(np.float32)
    )["data"]
    return {
        "mmd": float(mmd["distance"]),
        "p_value": float(mmd["p_val"]),
        "significant": bool(mmd["is_drift"]),
        "rows_per_side": len(a),
    }


def run(reference_path: str, current_path: str, config_path: str, out_path: str, multivariate: bool = True) -> None:
    import pandas as pd

    with open(config_path) as f:
        config = json.load(f)
    report = detect(pd.read_parquet(reference_path), pd.read_parquet(current_path), config, multivariate=multivariate)
    with open(out_path, "w") as f:
        json.dump(report, f, indent=2)


def serve(requests, answers) -> None:
    """Answer one detection request per line until the input closes."""
    for line in requests:
        try:
            request = json.loads(line)
            folder = request["folder"]
            run(f"{folder}/reference.parquet", f"{folder}/current.parquet", f"{folder}/config.json",
                f"{folder}/drift.json", bool(request.get("multivariate", True)))  # fmt: skip
            answer = {"ok": True}
        except Exception as error:  # noqa: BLE001 - reported to the caller, the process serves on
            answer = {"error": f"{type(error).__name__}: {error}"}
        answers.write(json.dumps(answer) + "\n")
        answers.flush()


def main(argv: list[str]) -> None:
    if argv == ["--serve"]:
        serve(sys.stdin, sys.stdout)
    else:
        run(*argv)


if __name__ == "__main__":
    main(sys.argv[1:])
