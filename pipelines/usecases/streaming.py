"""The spec's `streaming` section: the event streams that keep a use case's online features current.

Each stream carries the rows of one day-partitioned source table as events, published when each
becomes known (its `event_time`), and updates one feature view: the stream processor
(pipelines/streaming/processor.py) validates every event against the table's types and its suite,
and writes the view's row (`features`: view column <- event column) to the Feast online store and to
the offline stream sink, which the daily reconciliation compares with the dbt mart of the same name.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

StreamName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,62}$")]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EventTime(_Section):
    column: str = Field(description="The table's timestamp column an event's time comes from...")
    plus: dt.timedelta = Field(
        dt.timedelta(0), description="...plus this (an ISO 8601 duration: PT1H for an hour known at its end)..."
    )
    plus_minutes: list[str] = Field(
        default_factory=list,
        description="...plus these numeric columns, in minutes (a departure: the scheduled minute and the delay). A "
        "row with any of them null has no event time: it did not happen (a cancelled flight never departs).",
    )


class Window(_Section):
    """The view's features as trailing aggregates of the stream's events per join key, over [t - length, t]
    at each event's time t: what the stream knows at t, and what the view's dbt mart computes for each event."""

    length: dt.timedelta = Field(description="How far back the window reaches (an ISO 8601 duration, e.g. PT2H).")
    count: str | None = Field(None, description="The view column counting the window's events.")
    means: dict[str, str] = Field(
        default_factory=dict, description="View columns averaging an event column over the window (view: event)."
    )

    @field_validator("length")
    @classmethod
    def _bounded(cls, value: dt.timedelta) -> dt.timedelta:
        if not dt.timedelta(0) < value <= dt.timedelta(days=1):
            raise ValueError(f"a window of {value} is not more than 0 and at most a day")
        return value

    @property
    def columns(self) -> list[str]:
        return [*([self.count] if self.count else []), *self.means]


class Stream(_Section):
    table: str = Field(description="The day-partitioned source table whose rows are the stream's events.")
    key: list[str] = Field(min_length=1, description="The columns that identify an event (a redelivery repeats them).")
    event_time: EventTime = Field(description="When an event is known, and published.")
    feature_view: str = Field(description="The feature view (one of features.marts) each event updates.")
    features: dict[str, str] = Field(
        min_length=1,
        description="The view's join keys and features from the event's columns (view column: event column), "
        "as its dbt mart computes them; with a `window`, its join keys only.",
    )
    window: Window | None = Field(None, description="The view's features aggregate the events of a trailing window.")

    @property
    def event_columns(self) -> list[str]:
        """The event columns the stream reads: the mapped ones, and those its window averages."""
        return [*self.features.values(), *(self.window.means.values() if self.window else [])]

    @property
    def carried(self) -> list[str]:
        """The columns an event carries: its key, its time's and what the stream reads, nothing else (a flight's
        tail number, personal data, never enters the broker)."""
        used = [*self.key, self.event_time.column, *self.event_time.plus_minutes, *self.event_columns]
        return list(dict.fromkeys(used))


class Streaming(_Section):
    streams: dict[StreamName, Stream] = Field(min_length=1)

    def for_view(self, view: str) -> tuple[str, Stream] | None:
        return next(((name, s) for name, s in self.streams.items() if s.feature_view == view), None)

    @property
    def lookback(self) -> dt.timedelta:
        """How far before an instant the events reach that the streams' values at the instant depend on."""
        return max((s.window.length for s in self.streams.values() if s.window), default=dt.timedelta(0))


def check_streams(streaming: Streaming, sources, views: list[str]) -> list[str]:
    """What is wrong with `streaming` against the spec's sources and feature views (empty when nothing is)."""
    problems = []
    for name, stream in streaming.streams.items():
        where = f"streaming.streams.{name}"
        table = sources.tables.get(stream.table)
        if table is None or table.partition is None:
            problems.append(f"{where}.table {stream.table!r} is not a day-partitioned source table")
            continue
        columns = table.columns
        used = [*stream.key, stream.event_time.column, *stream.event_time.plus_minutes, *stream.event_columns]
        unknown = sorted({c for c in used if c not in columns})
        if unknown:
            problems.append(f"{where} uses {unknown}, which are not columns of the {stream.table} table")
        if columns.get(stream.event_time.column, "timestamp") != "timestamp":
            problems.append(f"{where}.event_time.column {stream.event_time.column!r} is not a timestamp column")
        numeric = ("int8", "int16", "int32", "int64", "float64")
        added = [*stream.event_time.plus_minutes, *(stream.window.means.values() if stream.window else [])]
        wordy = sorted({c for c in added if columns.get(c, "float64") not in numeric})
        if wordy:
            problems.append(f"{where} adds or averages {wordy}, which are not numeric columns of {stream.table}")
        if stream.window and not stream.window.columns:
            problems.append(f"{where}.window aggregates nothing: give it a count or means")
        if stream.feature_view not in views:
            problems.append(f"{where}.feature_view {stream.feature_view!r} is not one of the feature views {views}")
    targets = [s.feature_view for s in streaming.streams.values()]
    doubled = sorted({v for v in targets if targets.count(v) > 1})
    if doubled:
        problems.append(f"streaming: views {doubled} are updated by more than one stream")
    return problems
