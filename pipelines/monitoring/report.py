"""The drift and performance report of one monitored day: a self-contained HTML page (inline SVG)."""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np

from pipelines.evaluation.report import line_chart

BINS = 20


def _histogram(values: np.ndarray, top: float) -> list[list[float]]:
    """Shares of `values` in BINS bins over [0, top], the bins' centres scaled to [0, 1] for `line_chart`."""
    counts, edges = np.histogram(values, bins=BINS, range=(0, top))
    share = counts / max(counts.sum(), 1)
    return [[float((a + b) / 2 / top), float(s)] for a, b, s in zip(edges[:-1], edges[1:], share, strict=True)]


def write_report(folder: Path, outcome: dict, drift: dict, config: dict) -> Path:
    import pandas as pd

    reference = pd.read_parquet(folder / "reference.parquet")["prediction"].to_numpy(float)
    current = pd.read_parquet(folder / "current.parquet")["prediction"].to_numpy(float)
    binary = config.get("task", "binary_classification") == "binary_classification"
    top = 1.0 if binary else float(max(np.max(reference, initial=0), np.max(current, initial=0), 1e-9))
    figure = line_chart(
        f"Predictions of {config['label']}",
        [("reference", _histogram(reference, top), "#1f77b4"), ("this day", _histogram(current, top), "#d62728")],
        "probability" if binary else f"prediction (share of {top:.4g})",
        "share of rows",
    )
    numeric = sorted(drift["numeric"].items(), key=lambda kv: -kv[1]["excess"] * kv[1]["weight"])
    widest = max((f["excess"] * f["weight"] for _, f in numeric), default=0) or 1
    features = "".join(
        f"<tr><td>{html.escape(name)}</td><td>{f['ks']:.3f}</td><td>{f['natural']:.3f}</td>"
        f"<td>{f['excess']:.3f}</td><td>{f['weight']:.3f}</td><td>{f['p_value']:.2g}"
        f"{' *' if f['significant'] else ''}</td><td><div style='background:#d62728;height:10px;"
        f"width:{200 * f['excess'] * f['weight'] / widest:.0f}px'></div></td></tr>"
        for name, f in numeric
    )
    categorical = "".join(
        f"<li>{html.escape(name)}: chi-squared p = {c['p_value']:.2g}{' (significant)' if c['significant'] else ''}"
        f", unseen categories {c['unseen_share']:.1%}</li>"
        for name, c in drift["categorical"].items()
    )
    a, d, p = outcome["assessment"], outcome["decision"], outcome["performance"]
    mmd = drift["multivariate"]
    quality = (f"ROC AUC {p['roc_auc']:.4f}, log loss {p['log_loss']:.4f}" if binary else
               f"RMSE {p['rmse']:.4g}, MAE {p['mae']:.4g}") if p else ""  # fmt: skip
    performance = (
        f"<p>On {p['rows']} rows with landed outcomes: {quality}, mean loss {p['loss']:.4g} (reference "
        f"{config['reference_loss']:.4g}); observed {config['label']} {p['label_mean']:.4g} on average against "
        f"{p['mean_prediction']:.4g} predicted.</p>"
        if p
        else "<p>No landed outcomes for this day yet.</p>"
    )
    if outcome.get("variants"):
        from pipelines.deploy.analysis import render

        table = html.escape(render(outcome["variants"]))
        performance += f"<h2>Every variant on the landed outcomes</h2><pre>{table}</pre>"
    breaches = "".join(f"<li>{html.escape(b)}</li>" for b in a["breaches"]) or "<li>none</li>"
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>Drift {a["day"]}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:60em}}td,th{{padding:2px 8px;text-align:right}}
table{{border-collapse:collapse}}tr:nth-child(even){{background:#f4f4f4}}</style></head><body>
<h1>{html.escape(outcome["model"])} v{outcome["version"]}: {a["day"]}</h1>
<p><b>{"Retrain requested" if d["retrain"] else "No retrain"}</b>: {html.escape(d["reason"])}</p>
<h2>Breaches</h2><ul>{breaches}</ul>
<p>{a["rows"]} scored rows against a reference of {drift["rows"]["reference"]} from
{", ".join(config["reference_days"])}. Feature drift (importance-weighted KS beyond natural day-to-day drift)
{a["feature_drift"]:.3f}; prediction drift {a["prediction_drift"]:.3f} (KS {drift["predictions"]["ks"]:.3f},
natural {drift["predictions"]["natural"]:.3f}); multivariate MMD {mmd["mmd"]:.4f} (p = {mmd["p_value"]:.2g},
{mmd["rows_per_side"]} rows a side).</p>
{performance}
<p>{figure}</p>
<h2>Features</h2><table><tr><th>feature</th><th>KS</th><th>natural</th><th>excess</th><th>weight</th>
<th>p (Bonferroni *)</th><th>weighted excess</th></tr>{features}</table>
<h2>Categories</h2><ul>{categorical}</ul>
</body></html>"""
    path = folder / "report.html"
    path.write_text(page)
    return path
