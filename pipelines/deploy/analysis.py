"""A/B analysis on labelled outcomes: once the items' outcomes are landed (a flight's arrival, an hour's
riders), how did each variant's predictions score, and is the difference to the champion real?

Per item the loss of its prediction (log loss, or squared error for a regressor) is one observation. A
live variant is compared with the champion on different items (sticky buckets of one population): the
difference of mean loss with a normal-approximation confidence interval (Welch). A shadow variant
scored the very items the live variants answered: a paired difference, much tighter. Each item counts
once per variant (its first logged answer); failed answers (`error`) are not scored.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from pipelines.evaluation.metrics import row_losses, scores
from pipelines.usecases.spec import UseCase


@dataclass
class Comparison:
    variant: str
    against: str
    paired: bool
    rows: int
    mean_difference: float  # variant - against, mean loss per item (negative: variant better)
    ci_low: float
    ci_high: float
    verdict: str


def _comparison(variant: str, against: str, paired: bool, rows: int, diff: float, half: float) -> Comparison:
    low, high = diff - half, diff + half
    verdict = "better" if high < 0 else "worse" if low > 0 else "no significant difference"
    return Comparison(variant, against, paired, rows, float(diff), float(low), float(high), verdict)


def ab_report(usecase: UseCase, log, labels, confidence: float = 0.95) -> dict:
    """{"variants": {name: metrics}, "comparisons": [Comparison...], "unlabelled": n} for a window of the
    use case's prediction log and its landed labels (entity id and label)."""
    from scipy.stats import norm

    z = float(norm.ppf(0.5 + confidence / 2))
    key, label, answer = usecase.features.entity_id, usecase.features.label.column, usecase.prediction_column
    answered = log[log["error"].fillna("") == ""] if len(log) else log
    first = answered.sort_values("logged_at").drop_duplicates([key, "variant"])
    joined = first.merge(labels, on=key, how="inner", validate="many_to_one")
    joined["loss"] = row_losses(usecase.task, joined[label].to_numpy(), joined[answer].to_numpy())
    variants = {
        name: {k: v for k, v in scores(usecase.task, part[label], part[answer]).items() if k != "calibration"}
        for name, part in joined.groupby("variant")
    }
    comparisons = []
    live = joined[~joined["variant"].str.startswith("shadow:")]
    champion = live[live["variant"] == "champion"]["loss"].to_numpy()
    for name, part in live.groupby("variant"):
        if name == "champion" or not len(champion):
            continue
        loss = part["loss"].to_numpy()
        diff = loss.mean() - champion.mean()
        se = math.sqrt(loss.var(ddof=1) / len(loss) + champion.var(ddof=1) / len(champion))
        comparisons.append(_comparison(name, "champion", False, len(loss), diff, z * se))
    served = live.drop_duplicates(key).set_index(key)["loss"]  # what the consumer got
    for name, part in joined[joined["variant"].str.startswith("shadow:")].groupby("variant"):
        pairs = part.set_index(key)["loss"].to_frame("shadow").join(served.rename("live"), how="inner")
        d = (pairs["shadow"] - pairs["live"]).to_numpy()
        if len(d) < 2:
            continue
        half = z * d.std(ddof=1) / math.sqrt(len(d))
        comparisons.append(_comparison(name, "live", True, len(d), float(d.mean()), half))
    unlabelled = int(first[key].nunique() - joined[key].nunique())
    return {"task": usecase.task, "confidence": confidence, "variants": variants,
            "comparisons": [asdict(c) for c in comparisons], "unlabelled": unlabelled}  # fmt: skip


def render(report: dict) -> str:
    if report.get("task") == "regression":
        columns, loss = [("rows", "rows", ">10d"), ("label_mean", "mean", ">10.1f"), ("rmse", "RMSE", ">10.3f"),
                         ("mae", "MAE", ">10.3f"), ("bias", "bias", ">+10.3f")], "squared error"  # fmt: skip
    else:
        columns, loss = [("rows", "rows", ">10d"), ("base_rate", "positive", ">10.1%"),
                         ("roc_auc", "ROC AUC", ">10.4f"), ("log_loss", "log loss", ">10.4f"),
                         ("brier", "Brier", ">10.4f")], "log loss"  # fmt: skip
    lines = [f"  {'variant':<22}" + "".join(f"{head:>10}" for _, head, _ in columns)]
    for name, m in sorted(report["variants"].items()):
        lines.append(f"  {name:<22}" + "".join(format(m[k], fmt) for k, _, fmt in columns))
    pct = f"{report['confidence']:.0%}"
    for c in report["comparisons"]:
        kind = "paired, same items" if c["paired"] else "different items"
        lines.append(
            f"  {c['variant']} vs {c['against']} ({kind}, {c['rows']} rows): {loss} "
            f"{c['mean_difference']:+.4f} per item, {pct} CI [{c['ci_low']:+.4f}, {c['ci_high']:+.4f}]: "
            f"{c['verdict']}"
        )
    if report["unlabelled"]:
        lines.append(f"  {report['unlabelled']} logged items have no landed outcome yet and are not scored")
    return "\n".join(lines)
