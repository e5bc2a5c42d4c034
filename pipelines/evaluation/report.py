"""A candidate's evaluation report: JSON for machines, one self-contained HTML page (inline SVG plots) for people."""

from __future__ import annotations

import html
import json
import math
from pathlib import Path

import numpy as np

W, H, PAD = 360, 260, 36


def roc_points(y: np.ndarray, p: np.ndarray, limit: int = 200) -> list[list[float]]:
    from sklearn.metrics import roc_curve

    if not 0 < y.sum() < len(y):
        return []
    fpr, tpr, _ = roc_curve(y, p)
    keep = np.unique(np.linspace(0, len(fpr) - 1, min(limit, len(fpr))).astype(int))
    return [[float(fpr[i]), float(tpr[i])] for i in keep]


def residual_points(y: np.ndarray, p: np.ndarray, bins: int = 10) -> list[list[float]]:
    """A regressor's mean observed value per decile of its predictions, both scaled by the largest of
    them to [0, 1] (the diagonal is a perfect model), for `line_chart`."""
    y, p = np.asarray(y, dtype=float), np.asarray(p, dtype=float)
    if not len(y) or not np.isfinite(p).all():
        return []
    scale = max(float(np.max(np.abs(y))), float(np.max(np.abs(p))), 1e-12)
    order = np.argsort(p)
    return [[float(p[i].mean()) / scale, float(y[i].mean()) / scale] for i in np.array_split(order, bins) if len(i)]


def line_chart(title: str, series: list[tuple[str, list[list[float]], str]], xlabel: str, ylabel: str) -> str:
    def sx(x: float) -> float:
        return PAD + x * (W - 2 * PAD)

    def sy(y: float) -> float:
        return H - PAD - y * (H - 2 * PAD)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" role="img">',
        f"<title>{html.escape(title)}</title>",
        f'<rect x="{PAD}" y="{PAD}" width="{W - 2 * PAD}" height="{H - 2 * PAD}" fill="none" stroke="#999"/>',
        f'<line x1="{sx(0)}" y1="{sy(0)}" x2="{sx(1)}" y2="{sy(1)}" stroke="#ccc" stroke-dasharray="4"/>',
        f'<text x="{W / 2}" y="{H - 6}" text-anchor="middle" font-size="11">{html.escape(xlabel)}</text>',
        f'<text x="10" y="{H / 2}" font-size="11" transform="rotate(-90 10 {H / 2})" text-anchor="middle">'
        f"{html.escape(ylabel)}</text>",
        f'<text x="{W / 2}" y="16" text-anchor="middle" font-size="12">{html.escape(title)}</text>',
    ]
    for i, (name, points, colour) in enumerate(series):
        if points:
            path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in points)
            parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        parts.append(
            f'<text x="{PAD + 6}" y="{PAD + 14 + 13 * i}" font-size="11" fill="{colour}">{html.escape(name)}</text>'
        )
    return "".join(parts) + "</svg>"


def _fmt(value) -> str:
    if isinstance(value, float):
        return "NaN" if math.isnan(value) else f"{value:.4f}"
    return html.escape(str(value))


def write_report(folder: Path, evaluation: dict, plots: dict) -> tuple[Path, Path]:
    """`evaluation` (metrics, slices, behaviour, onnx, baseline) and `plots` (roc/calibration series)."""
    folder.mkdir(parents=True, exist_ok=True)
    json_path = folder / "report.json"
    json_path.write_text(json.dumps(evaluation, indent=2, default=str))
    holdout, baseline = evaluation["holdout"], evaluation.get("baseline", {})
    regression = evaluation.get("task") == "regression"
    metrics = ("rmse", "mae", "bias", "r2", "rmse_vs_baseline", "rows", "label_mean") if regression else (
        "roc_auc", "pr_auc", "log_loss", "log_loss_skill", "brier", "ece", "rows", "base_rate")  # fmt: skip
    rows = "".join(
        f"<tr><th>{name}</th><td>{_fmt(holdout.get(name))}</td><td>{_fmt(baseline.get(name, ''))}</td></tr>"
        for name in metrics
    )
    if regression:
        figures = line_chart(
            "Observed vs predicted, holdout deciles",
            [(evaluation["family"], plots["residuals"], "#1f77b4"),
             ("naive baseline", plots.get("baseline_residuals", []), "#ff7f0e")],
            "mean prediction (share of the largest value)",
            "mean observed (same scale)",
        )  # fmt: skip
    else:
        calibration = [[c["predicted"], c["observed"]] for c in holdout.get("calibration", [])]
        figures = line_chart(
            "ROC, holdout",
            [(evaluation["family"], plots["roc"], "#1f77b4"),
             ("naive baseline", plots.get("baseline_roc", []), "#ff7f0e")],
            "false positive rate",
            "true positive rate",
        )  # fmt: skip
        figures += line_chart(
            "Calibration, holdout",
            [("observed vs predicted", calibration, "#2ca02c")],
            "predicted probability",
            "observed rate",
        )
    slice_metrics = ("rmse", "mae") if regression else ("roc_auc", "log_loss")
    slices = "".join(
        f"<tr><td>{html.escape(column)}</td><td>{html.escape(value)}</td><td>{m['rows']}</td>"
        + "".join(f"<td>{_fmt(m[k])}</td>" for k in slice_metrics)
        + "</tr>"
        for column, values in evaluation["slices"].items()
        for value, m in values.items()
    )
    threshold = evaluation.get("threshold")
    decision = "" if threshold is None else f"; decision threshold {threshold:.4f}"
    slice_heads = "".join(f"<th>{k}</th>" for k in slice_metrics)
    behaviour = "".join(
        f"<li>{'passed' if c['passed'] else '<b>FAILED</b>'}: {html.escape(c['name'])} "
        f"<code>{html.escape(json.dumps(c['detail']))}</code></li>"
        for c in evaluation["behaviour"]
    )
    onnx, w = evaluation["onnx"], evaluation["window"]
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>{evaluation["family"]} evaluation</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:60em}}td,th{{padding:2px 8px;text-align:right}}
table{{border-collapse:collapse}}tr:nth-child(even){{background:#f4f4f4}}</style></head><body>
<h1>{html.escape(evaluation["family"])} candidate</h1>
<p>Fitted {w["train_start"]} .. {w["train_end"]}, early-stopped until {w["validation_end"]},
judged on the holdout after it, until {w["holdout_end"]} (with the naive baseline on the same rows).</p>
<table><tr><th></th><th>candidate</th><th>naive baseline</th></tr>{rows}</table>
<p>{figures}</p>
<p>ONNX parity {onnx["parity"]:.2e}; ORT one-row latency p50 {onnx["latency_ms"]["p50"]:.3f} ms,
p99 {onnx["latency_ms"]["p99"]:.3f} ms{decision}.</p>
<h2>Behavioural checks</h2><ul>{behaviour}</ul>
<h2>Slices</h2><table><tr><th>slice</th><th>value</th><th>rows</th>{slice_heads}</tr>
{slices}</table>
</body></html>"""
    html_path = folder / "report.html"
    html_path.write_text(page)
    return json_path, html_path
