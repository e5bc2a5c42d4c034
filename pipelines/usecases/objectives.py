"""The spec's `objectives` section: the service levels a use case is run against, and paged on.

Each objective is a share of good events over the objective's `window` (28 days by default); its error
budget is what is left to 1. pipelines/alerting/rules.py turns them into Prometheus recording and alerting
rules: multi-window burn-rate alerts for the serving objectives (the SRE workbook's: page when 2% of a
28-day budget burns in an hour, or 5% in six hours; a ticket when 10% burns in a day or in three; the
windows scale with the objective's), a threshold alert for freshness and for the live model's quality.
"""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field, field_validator

# The bounds of the model service's request-duration histogram (serving/metrics.py), in seconds: a latency
# objective's threshold is one of them, so that the share of fast requests is read off one bucket.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Availability(_Section):
    target: float = Field(gt=0.9, lt=1, description="Share of prediction requests answered without a server error.")


class Latency(_Section):
    threshold: dt.timedelta = Field(description="A request answered within this (ISO 8601, e.g. PT0.25S) is fast...")
    target: float = Field(gt=0.5, lt=1, description="...and this share of them must be (0.99: a p99 of `threshold`).")

    @field_validator("threshold")
    @classmethod
    def _a_bucket(cls, value: dt.timedelta) -> dt.timedelta:
        if value.total_seconds() not in LATENCY_BUCKETS:  # measured on the request histogram's bucket bound
            raise ValueError(f"{value.total_seconds()} s is not a bucket of the request histogram {LATENCY_BUCKETS}")
        return value


class Freshness(_Section):
    by: dt.time = Field(
        description="Local time of the next day by which a day is landed, validated and materialized (e.g. 02:00)."
    )


class Quality(_Section):
    max_loss_ratio: float = Field(
        gt=1, description="The live model's pooled loss against its reference's, as the monitoring DAG measures it."
    )


class Objectives(_Section):
    window: dt.timedelta = Field(dt.timedelta(days=28), description="The period each objective's budget covers.")
    availability: Availability | None = None
    latency: Latency | None = None
    freshness: Freshness | None = None
    quality: Quality | None = None

    @field_validator("window")
    @classmethod
    def _days(cls, value: dt.timedelta) -> dt.timedelta:
        if not dt.timedelta(days=1) <= value <= dt.timedelta(days=90) or value % dt.timedelta(days=1):
            raise ValueError(f"a window of {value} is not a whole number of days from 1 to 90")
        return value
