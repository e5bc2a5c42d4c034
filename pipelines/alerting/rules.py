"""Prometheus recording and alerting rules, generated from each use case's `objectives` (its spec).

Serving objectives (availability, latency) get the SRE workbook's multi-window, multi-burn-rate alerts:
an alert fires when the error ratio over a long window and over a short one both exceed the rate that
would spend a given share of the budget in the long window (the short window makes it stop soon after
the burn does). Freshness and model quality are thresholds on the platform exporter's gauges
(pipelines/alerting/exporter.py). Every alert carries the use case, its owner, the objective and a
runbook (docs/runbooks/<alert kind>.md).

`platform alert-rules --out FILE` writes them; `promtool check rules` and `promtool test rules` check them
(tests/integration/test_alert_rules.py).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import yaml
from prometheus_client.utils import floatToGoString

from pipelines.usecases.spec import UseCase

RUNBOOKS = "docs/runbooks"


@dataclass(frozen=True)
class BurnWindow:
    """One alert of the multi-window, multi-burn-rate set, for a 28-day objective: windows scale with the
    objective's own window, as Pyrra scales them (an hour of a 28-day budget is 129 s of a 1-day one)."""

    severity: str  # page: wake someone; ticket: the next working hours
    long: dt.timedelta
    short: dt.timedelta
    budget_share: float  # of the objective's window's error budget, spent in `long`
    wait: dt.timedelta  # the alert's `for`

    def scaled(self, window: dt.timedelta) -> BurnWindow:
        factor = window / REFERENCE_WINDOW

        def scale(span: dt.timedelta) -> dt.timedelta:
            return dt.timedelta(seconds=max(1, round((span * factor).total_seconds())))

        return BurnWindow(self.severity, scale(self.long), scale(self.short), self.budget_share, scale(self.wait))


REFERENCE_WINDOW = dt.timedelta(days=28)
_H, _M = dt.timedelta(hours=1), dt.timedelta(minutes=1)
# The SRE workbook's table (chapter 5, "Alerting on SLOs"), as shares of a 28-day budget; Pyrra's waits.
BURN_WINDOWS = (
    BurnWindow("page", 1 * _H, 5 * _M, 0.02, 2 * _M),
    BurnWindow("page", 6 * _H, 30 * _M, 0.05, 15 * _M),
    BurnWindow("ticket", 24 * _H, 2 * _H, 0.10, 1 * _H),
    BurnWindow("ticket", 72 * _H, 6 * _H, 0.10, 3 * _H),
)


def duration(span: dt.timedelta) -> str:
    """A Prometheus duration in its largest whole unit: 1h, 5m, 129s, 3d."""
    seconds = round(span.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def burn_rate(burn: BurnWindow) -> float:
    """How many times faster than even the error budget is spent, when `budget_share` of it goes in `long`
    (the same for every objective window: the windows scale with it)."""
    return round(burn.budget_share * REFERENCE_WINDOW / burn.long, 4)


def _seconds(window: str) -> float:
    return {"s": 1, "m": 60, "h": 3600, "d": 86400}[window[-1]] * float(window[:-1])


def _ratio(bad: str, total: str) -> str:
    """bad / total per use case; 0 (not empty) when nothing bad happened while requests came."""
    return f"(sum by (usecase) ({bad}) or sum by (usecase) ({total}) * 0) / sum by (usecase) ({total})"


def usecase_rules(usecase: UseCase) -> list[dict]:
    """The rule groups of one use case: its SLIs recorded over each window, and the alerts on them."""
    objectives, name = usecase.objectives, usecase.name
    match = f'usecase="{name}"'
    requests = f"platform_serving_requests_total{{{match}}}"
    records, alerts = [], []

    def labels(severity: str, objective: str) -> dict:
        return {"severity": severity, "usecase": name, "owner": usecase.owner, "objective": objective}

    burns = [burn.scaled(objectives.window) for burn in BURN_WINDOWS]
    rate_windows = sorted({duration(w) for b in burns for w in (b.long, b.short)}, key=_seconds)
    slis = {}
    if objectives.availability:
        slis["availability"] = ("platform:serving_request_errors:ratio_rate", objectives.availability.target,
                                lambda w: _ratio(f'rate(platform_serving_requests_total{{{match},code=~"5.."}}[{w}])',
                                                 f"rate({requests}[{w}])"),
                                "answered with a server error")  # fmt: skip
    if objectives.latency:
        bound = floatToGoString(objectives.latency.threshold.total_seconds())
        histogram = "platform_serving_request_duration_seconds"
        slis["latency"] = (
            "platform:serving_request_slow:ratio_rate",
            objectives.latency.target,
            lambda w: (
                f'1 - (sum by (usecase) (rate({histogram}_bucket{{{match},le="{bound}"}}[{w}])) / '
                f"sum by (usecase) (rate({histogram}_count{{{match}}}[{w}])))"
            ),
            f"slower than {objectives.latency.threshold.total_seconds():g} s",
        )
    for objective, (record, target, expression, bad) in slis.items():
        for window in rate_windows:
            records.append({"record": f"{record}{window}", "expr": expression(window), "labels": {"usecase": name}})
        budget = 1 - target
        for burn, scaled in zip(BURN_WINDOWS, burns, strict=True):
            rate, long, short = burn_rate(burn), duration(scaled.long), duration(scaled.short)
            limit = floatToGoString(round(rate * budget, 8))
            alerts.append({
                "alert": f"Serving{objective.capitalize()}BudgetBurn",
                "expr": f"{record}{long}{{{match}}} > {limit} and {record}{short}{{{match}}} > {limit}",
                "for": duration(scaled.wait),
                "labels": {**labels(burn.severity, objective), "long_window": long},
                "annotations": {
                    "summary": f"{name}: {{{{ $value | humanizePercentage }}}} of requests {bad} over {long}",
                    "description": f"The {objective} objective ({target:.2%} over {objectives.window.days} days) is "
                                   f"burning its budget {rate:g}x too fast over {long} and {short}: "
                                   f"{burn.budget_share:.0%} of it gone in {long} at this rate.",
                    "runbook_url": f"{RUNBOOKS}/serving_{objective}.md",
                },
            })  # fmt: skip
    if objectives.freshness:
        by = objectives.freshness.by
        late_s = 86400 + by.hour * 3600 + by.minute * 60
        alerts.append({
            "alert": "DataFreshnessMissed",
            "expr": f"time() - max by (usecase) (platform_data_materialized_through_timestamp_seconds{{{match}}}) "
                    f"> {late_s}",
            "for": "0m",  # a deadline passed is a fact, not a blip to wait out
            "labels": labels("ticket", "freshness"),
            "annotations": {
                "summary": f"{name}: the newest materialized day ended {{{{ $value | humanizeDuration }}}} ago",
                "description": f"A day must be landed, validated and materialized by {by:%H:%M} ({usecase.timezone}) "
                               "the next day; the day after the newest materialized one is past that.",
                "runbook_url": f"{RUNBOOKS}/data_freshness.md",
            },
        })  # fmt: skip
    if objectives.quality:
        alerts.append({
            "alert": "ModelQualityBelowObjective",
            "expr": f"max by (usecase) (platform_model_loss_ratio{{{match}}}) > "
                    f"{floatToGoString(objectives.quality.max_loss_ratio)}",
            "for": "0m",
            "labels": labels("ticket", "quality"),
            "annotations": {
                "summary": f"{name}: live loss {{{{ $value | printf \"%.2f\" }}}}x the reference's",
                "description": f"The live model's loss against its reference exceeds "
                               f"{objectives.quality.max_loss_ratio:g}x (the monitoring DAG's latest assessment).",
                "runbook_url": f"{RUNBOOKS}/model_quality.md",
            },
        })  # fmt: skip
    groups = []
    if records:
        groups.append({"name": f"{name}_slis", "rules": records})  # at Prometheus's evaluation interval
    if alerts:
        groups.append({"name": f"{name}_objectives", "rules": alerts})
    return groups


PLATFORM_ALERTS = [
    {
        "alert": "PlatformTargetDown",
        "expr": "up == 0",
        "for": "2m",
        "labels": {"severity": "page", "objective": "availability"},
        "annotations": {
            "summary": "{{ $labels.job }} at {{ $labels.instance }} does not answer its scrape",
            "description": "Prometheus has not reached the target for two minutes: the process is down or hung.",
            "runbook_url": f"{RUNBOOKS}/target_down.md",
        },
    },
    {
        "alert": "StreamProcessorLagging",
        "expr": "max by (usecase, stream) (platform_stream_lag_events) > 1000",
        "for": "10m",
        "labels": {"severity": "ticket", "objective": "freshness"},
        "annotations": {
            "summary": "{{ $labels.usecase }} {{ $labels.stream }}: {{ $value }} events not acknowledged",
            "description": "The stream processor has been more than 1,000 events behind for ten minutes: online "
            "features are older than the prediction time assumes.",
            "runbook_url": f"{RUNBOOKS}/stream_lag.md",
        },
    },
]


def alert_rules(usecases: list[UseCase]) -> dict:
    """The platform's rule file: every use case's groups, and the platform's own."""
    groups = [group for usecase in usecases for group in usecase_rules(usecase)]
    return {"groups": [*groups, {"name": "platform", "rules": PLATFORM_ALERTS}]}


def write_rules(usecases: list[UseCase], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "# Generated from the use cases' objectives by `platform alert-rules`: edit the specs, not this file.\n"
    path.write_text(text + yaml.safe_dump(alert_rules(usecases), sort_keys=False, width=200))
    return path
