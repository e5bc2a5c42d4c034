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

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from pipelines.settings import REPO_ROOT

SEEDS = REPO_ROOT / "dbt" / "seeds"  # the dbt project's reference data
StreamName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,62}$")]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LocalClock(_Section):
    """An event time that the table gives as a local wall clock: a date and an HHMM clock in a place's time zone
    (a scheduled arrival, in the destination's time)."""

    date: list[str] = Field(min_length=3, max_length=3, description="The columns of the local date: year, month, day.")
    clock: str = Field(description="The column of the local clock, an HHMM integer (1545 for 15:45).")
    next_day_before: str | None = Field(
        None,
        description="An HHMM column: a clock earlier than it is on the next day (an arrival clock before the "
        "departure clock is after midnight).",
    )


class Zone(_Section):
    """The time zone of a local clock, looked up by an event column in a reference source table."""

    column: str = Field(description="The event column naming the place (a destination airport).")
    table: str = Field(description="The reference source table (no partition) that gives each place's zone...")
    key: str = Field(description="...matched on this column of it...")
    name: str = Field(description="...and named by this one (an IANA zone such as America/Chicago).")
    seed: str | None = Field(
        None, description="A dbt seed (dbt/seeds/<seed>.csv, columns key and name) with the places the table lacks."
    )


class EventTime(_Section):
    column: str | None = Field(None, description="The table's timestamp column an event's time comes from...")
    local: LocalClock | None = Field(None, description="...or the local clock it comes from, in the `zone`...")
    zone: Zone | None = Field(None, description="...the local clock's time zone...")
    plus: dt.timedelta = Field(
        dt.timedelta(0), description="...plus this (an ISO 8601 duration: PT1H for an hour known at its end)..."
    )
    plus_minutes: list[str] = Field(
        default_factory=list,
        description="...plus these numeric columns, in minutes (a departure: the scheduled minute and the delay). A "
        "row with any of them null has no event time: it did not happen (a cancelled flight never departs).",
    )

    @model_validator(mode="after")
    def _one_origin(self) -> EventTime:
        if (self.column is None) == (self.local is None):
            raise ValueError("give the event time either a timestamp `column` or a `local` clock, not both or neither")
        if (self.local is None) != (self.zone is None):
            raise ValueError("a `local` clock needs its `zone`, and a `zone` belongs to a `local` clock")
        return self

    @property
    def columns(self) -> list[str]:
        """The event columns the time is computed from."""
        if self.local is not None:
            clock = [
                *self.local.date,
                self.local.clock,
                *([self.local.next_day_before] if self.local.next_day_before else []),
            ]
            return [*clock, self.zone.column, *self.plus_minutes]
        return [self.column, *self.plus_minutes]


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
        return list(dict.fromkeys([*self.key, *self.event_time.columns, *self.event_columns]))


class Streaming(_Section):
    streams: dict[StreamName, Stream] = Field(min_length=1)

    def for_view(self, view: str) -> tuple[str, Stream] | None:
        return next(((name, s) for name, s in self.streams.items() if s.feature_view == view), None)

    @property
    def lookback(self) -> dt.timedelta:
        """How far before an instant the events reach that the streams' values at the instant depend on: a
        windowed view's row is read until its ttl, the window's length, has passed (the processor checks the
        two are equal), and counts the events of the window before its own time."""
        return 2 * max((s.window.length for s in self.streams.values() if s.window), default=dt.timedelta(0))


def check_streams(streaming: Streaming, sources, views: list[str]) -> list[str]:
    """What is wrong with `streaming` against the spec's sources and feature views (empty when nothing is)."""
    problems = []
    for name, stream in streaming.streams.items():
        where = f"streaming.streams.{name}"
        table = sources.tables.get(stream.table)
        if table is None or not table.day_partitioned:
            problems.append(f"{where}.table {stream.table!r} is not a day-partitioned source table")
            continue
        columns, timing = table.columns, stream.event_time
        used = [*stream.key, *timing.columns, *stream.event_columns]
        unknown = sorted({c for c in used if c not in columns})
        if unknown:
            problems.append(f"{where} uses {unknown}, which are not columns of the {stream.table} table")
        if timing.column is not None and columns.get(timing.column, "timestamp") != "timestamp":
            problems.append(f"{where}.event_time.column {timing.column!r} is not a timestamp column")
        numeric = ("int8", "int16", "int32", "int64", "float64")
        clock = [*timing.local.date, timing.local.clock, timing.local.next_day_before] if timing.local else []
        added = [
            *timing.plus_minutes,
            *(c for c in clock if c),
            *(stream.window.means.values() if stream.window else []),
        ]
        wordy = sorted({c for c in added if columns.get(c, "float64") not in numeric})
        if wordy:
            problems.append(f"{where} adds or averages {wordy}, which are not numeric columns of {stream.table}")
        if timing.zone is not None:
            zones = sources.tables.get(timing.zone.table)
            if zones is None or zones.day_partitioned:
                problems.append(f"{where}.event_time.zone.table {timing.zone.table!r} is not a reference source table")
            elif not {timing.zone.key, timing.zone.name} <= set(zones.columns):
                problems.append(f"{where}.event_time.zone: {timing.zone.table} has no columns "
                                f"{sorted({timing.zone.key, timing.zone.name} - set(zones.columns))}")  # fmt: skip
            seed = SEEDS / f"{timing.zone.seed}.csv" if timing.zone.seed else None
            if seed is not None and not seed.is_file():
                problems.append(f"{where}.event_time.zone.seed {timing.zone.seed!r}: there is no {seed}")
        if stream.window and not stream.window.columns:
            problems.append(f"{where}.window aggregates nothing: give it a count or means")
        if stream.feature_view not in views:
            problems.append(f"{where}.feature_view {stream.feature_view!r} is not one of the feature views {views}")
    targets = [s.feature_view for s in streaming.streams.values()]
    doubled = sorted({v for v in targets if targets.count(v) > 1})
    if doubled:
        problems.append(f"streaming: views {doubled} are updated by more than one stream")
    return problems
