"""The spec's governance sections: who must approve a release (`deploy`), who the data is about (`subject`), and
how long each kind of data is kept (`retention`). The stage that acts on them is pipelines/governance."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Deploy(_Section):
    approval: Literal["none", "required"] = Field(
        "none", description="required: a person with the Approver role, other than whoever registered the candidate "
        "or started its release, approves it before it takes any traffic (four eyes)."
    )  # fmt: skip
    approval_timeout: dt.timedelta = Field(
        dt.timedelta(hours=24), description="No answer in this long rejects the candidate (ISO 8601, e.g. PT24H)."
    )

    @field_validator("approval_timeout")
    @classmethod
    def _positive(cls, value: dt.timedelta) -> dt.timedelta:
        if not dt.timedelta(seconds=1) <= value <= dt.timedelta(days=30):
            raise ValueError(f"an approval timeout must be between 1 second and 30 days (got {value})")
        return value


class Subject(_Section):
    columns: dict[str, str] = Field(
        min_length=1, description="Per source table, the column whose value identifies a data subject (a person, or "
        "what a person can be known by: a tail number, an account)."
    )  # fmt: skip
    request_field: str | None = Field(
        None, description="The serving request's field carrying the same identifier (objections are checked on it)."
    )
    derived: list[str] = Field(
        default_factory=list, description="Columns of the warehouse and the feature store holding it hashed with the "
        "PII salt (e.g. tailnum_hash): erased by their hash."
    )  # fmt: skip


class Retention(_Section):
    raw_days: int | None = Field(None, ge=1, description="Raw partitions older than this many days are deleted.")
    prediction_log_days: int | None = Field(None, ge=1, description="Prediction-log days older than this go.")
    registry_versions: int | None = Field(
        None, ge=1, description="Model versions kept (newest first); a live champion or challenger is always kept."
    )
