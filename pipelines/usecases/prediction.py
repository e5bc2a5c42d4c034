"""The spec's `prediction` section: the instant at which a row is predicted.

Training's point-in-time join, the monitoring reference, the replayed consumer traffic and the
serving lookup all use this one instant, so a model learns from exactly what serving reads:

- `lead_time: start_of_day` predicts a row with what was known at 00:00 local on its operations
  day (the daily batch path: the ingest DAG makes a day available once it is over);
- `lead_time: PT2H` (an ISO 8601 duration, or seconds) predicts it that long before its request
  time (features.request_time, a local wall clock): the real-time path, where the stream
  processor keeps the online store current (pipelines/streaming).
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

START_OF_DAY = "start_of_day"


class Prediction(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    lead_time: Literal["start_of_day"] | dt.timedelta = Field(
        START_OF_DAY,
        description="When a row is predicted: start_of_day (00:00 local of its operations day), or this long "
        "before its request time (an ISO 8601 duration such as PT2H).",
    )

    @field_validator("lead_time")
    @classmethod
    def _positive(cls, value):
        if isinstance(value, dt.timedelta) and not dt.timedelta(0) < value <= dt.timedelta(days=7):
            raise ValueError(f"a lead time must be more than 0 and at most 7 days (got {value})")
        return value

    @property
    def start_of_day(self) -> bool:
        return self.lead_time == START_OF_DAY

    @property
    def label(self) -> str:
        """How the mode reads in reports: 'start of day' or 'departure - 2:00:00' style."""
        return "start of day" if self.start_of_day else f"{_hours(self.lead_time)} before the request time"


def _hours(delta: dt.timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    return f"{minutes // 60} h" + (f" {minutes % 60} min" if minutes % 60 else "")
