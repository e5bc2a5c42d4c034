"""A/B analysis on labelled outcomes: once the flights' actual arrivals are landed, how did each
variant's predictions score, and is the difference to the champion real?

Per flight the log loss of its prediction is one observation. A live variant is compared with the
champion on different flights (sticky buckets of one population): the difference of mean log
loss with a normal-approximation confidence interval (Welch). A shadow variant scored the very
flights the live variants answered: a paired difference, much tighter. Each flight counts once
per variant (its first logged answer); failed answers (`error`) are not scored.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from pipelines.evaluation.metrics import flight_log_losses, scores

EPS = 1e-15


@dataclass
class Comparison:
    variant: str
    against: str
    paired: bool
    flights: int
    mean_difference: float  # variant - against, mean log loss per flight (negative: variant better)
    ci_low: float
    ci_high: float
    verdict: str


def _comparison(variant: str, against: str, paired: bool, flights: int, diff: float, half: float) -> Comparison:
    low, high = diff - half, diff + half
    verdict = "better" if high < 0 else "worse" if low > 0 else "no significant difference"
    return Comparison(variant, against, paired, flights, float(diff), float(low), float(high), verdict)


def ab_report(log, labels, confidence: float = 0.95) -> dict:
    """{"variants": {name: metrics}, "comparisons": [Comparison...], "unlabelled": n} for a window."""
    from scipy.stats import norm

    z = float(norm.ppf(0.5 + confidence / 2))
    answered = log[log["error"].fillna("") == ""] if len(log) else log
    first = answered.sort_values("logged_at").drop_duplicates(["flight_id", "variant"])
    joined = first.merge(labels, on="flight_id", how="inner", validate="many_to_one")
    joined["loss"] = flight_log_losses(joined["is_late_arrival"].to_numpy(), joined["probability"].to_numpy(), EPS)
    variants = {
        name: {k: v for k, v in scores(part["is_late_arrival"], part["probability"]).items() if k != "calibration"}
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
    served = live.drop_duplicates("flight_id").set_index("flight_id")["loss"]  # what the consumer got
    for name, part in joined[joined["variant"].str.startswith("shadow:")].groupby("variant"):
        pairs = part.set_index("flight_id")["loss"].to_frame("shadow").join(served.rename("live"), how="inner")
        d = (pairs["shadow"] - pairs["live"]).to_numpy()
        if len(d) < 2:
            continue
        half = z * d.std(ddof=1) / math.sqrt(len(d))
        comparisons.append(_comparison(name, "live", True, len(d), float(d.mean()), half))
    unlabelled = int(first["flight_id"].nunique() - joined["flight_id"].nunique())
    return {"confidence": confidence, "variants": variants, "comparisons": [asdict(c) for c in comparisons],
            "unlabelled_flights": unlabelled}  # fmt: skip


def render(report: dict) -> str:
    lines = [f"  {'variant':<22}{'flights':>8}{'late':>7}{'ROC AUC':>9}{'log loss':>10}{'Brier':>8}"]
    for name, m in sorted(report["variants"].items()):
        lines.append(
            f"  {name:<22}{m['rows']:>8}{m['base_rate']:>7.1%}{m['roc_auc']:>9.4f}"
            f"{m['log_loss']:>10.4f}{m['brier']:>8.4f}"
        )
    pct = f"{report['confidence']:.0%}"
    for c in report["comparisons"]:
        kind = "paired, same flights" if c["paired"] else "different flights"
        lines.append(
            f"  {c['variant']} vs {c['against']} ({kind}, {c['flights']} flights): log loss "
            f"{c['mean_difference']:+.4f} per flight, {pct} CI [{c['ci_low']:+.4f}, {c['ci_high']:+.4f}]: "
            f"{c['verdict']}"
        )
    if report["unlabelled_flights"]:
        lines.append(f"  {report['unlabelled_flights']} logged flights have no landed arrival yet and are not scored")
    return "\n".join(lines)
