"""Drift detectors, run in the drift virtualenv (alibi-detect needs numpy < 2): this module imports
only numpy, pandas and alibi-detect, never the rest of `pipelines`.

    .venv-drift/bin/python -m pipelines.monitoring.detect REFERENCE CURRENT CONFIG OUT

reads the reference sample and the current window (Parquet, same columns), the detector
configuration (JSON, built with the model), and writes the report (JSON):
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


def detect(reference, current, config: dict, seed: int = 0) -> dict:
    import numpy as np
    from alibi_detect.cd import ChiSquareDrift, KSDrift, MMDDrift

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

    rng = np.random.default_rng(seed)
    scale = ref.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    pick = lambda x: x[rng.choice(len(x), min(MMD_ROWS, len(x)), replace=False)]  # noqa: E731
    a, b = (pick(ref) - median) / scale, (pick(cur) - median) / scale
    mmd = MMDDrift(a.astype(np.float32), backend="pytorch", p_val=P_VALUE, n_permutations=100).predict(
        b.astype(np.float32)
    )["data"]

    from scipy.stats import ks_2samp

    predictions = ks_2samp(current["probability"].to_numpy(float), reference["probability"].to_numpy(float))
    natural = float(config["natural_drift"].get("probability", 0.0))
    return {
        "rows": {"reference": len(reference), "current": len(current)},
        "numeric": numeric,
        "categorical": categorical,
        "multivariate": {
            "mmd": float(mmd["distance"]),
            "p_value": float(mmd["p_val"]),
            "significant": bool(mmd["is_drift"]),
            "rows_per_side": len(a),
        },
        "predictions": {
            "ks": float(predictions.statistic),
            "p_value": float(predictions.pvalue),
            "natural": natural,
            "excess": max(float(predictions.statistic) - natural, 0.0),
            "mean_reference": float(reference["probability"].mean()),
            "mean_current": float(current["probability"].mean()),
        },
    }


def main(argv: list[str]) -> None:
    import pandas as pd

    reference_path, current_path, config_path, out_path = argv
    with open(config_path) as f:
        config = json.load(f)
    report = detect(pd.read_parquet(reference_path), pd.read_parquet(current_path), config)
    with open(out_path, "w") as f:
        json.dump(report, f, indent=2)


if __name__ == "__main__":
    main(sys.argv[1:])
