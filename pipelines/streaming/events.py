"""Events: a source table's rows as the operational systems publish them, and the checks every event
passes before it may change a feature.

An event carries the columns of its table that its stream needs (`Stream.carried`: key, time, features;
personal data such as a tail number stays out of the broker), JSON-typed: numbers, strings,
timestamps as ISO 8601 with their offset, null for a missing value. The processor holds it to the
same contract as the daily batch: the column types of the spec, and each expectation of the
table's suite that every row must meet (not null, in a set, between literal bounds). An expectation
the batch allows some rows to miss (`mostly` below 1) is not applied to one event alone: the stream
would otherwise refuse values the batch keeps, and the two would disagree.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import math
from dataclasses import dataclass, field

from pipelines.settings import REPO_ROOT
from pipelines.usecases.spec import SourceTable
from pipelines.usecases.streaming import Stream

INTEGER_RANGES = {"int8": 2**7, "int16": 2**15, "int32": 2**31, "int64": 2**63}


class EventRejected(ValueError):
    """An event that breaks its table's contract; the message is the dead-letter reason."""


@dataclass(frozen=True)
class Contract:
    """What every event of one table must satisfy: its columns' types and its suite's row rules."""

    columns: dict[str, str]
    not_null: frozenset[str] = frozenset()
    allowed: dict[str, frozenset] = field(default_factory=dict)
    bounds: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)

    @classmethod
    def of(cls, table: SourceTable, stream: Stream) -> Contract:
        """The contract of `stream`'s events: the columns it carries, with their types and row rules."""
        columns = {c: table.columns[c] for c in stream.carried}
        not_null, allowed, bounds = set(), {}, {}
        for expectation in _suite(table.suite):
            kind, kwargs = expectation["type"], expectation["kwargs"]
            column = kwargs.get("column")
            if column not in columns or kwargs.get("mostly", 1) < 1:
                continue
            if kind == "expect_column_values_to_not_be_null":
                not_null.add(column)
            elif kind == "expect_column_values_to_be_in_set":
                allowed[column] = frozenset(kwargs["value_set"])
            elif kind == "expect_column_values_to_be_between":
                low, high = kwargs.get("min_value"), kwargs.get("max_value")
                if all(v is None or isinstance(v, int | float) for v in (low, high)):  # not a run parameter
                    bounds[column] = (low, high)
        return cls(columns, frozenset(not_null), allowed, bounds)

    def check(self, data: dict | None) -> dict:
        """The event's columns parsed to Python values; EventRejected naming the first broken rule."""
        if not isinstance(data, dict):
            raise EventRejected("the payload is not a JSON object of the table's columns")
        missing = [c for c in self.columns if c not in data]
        extra = sorted(set(data) - set(self.columns))
        if missing or extra:
            raise EventRejected(f"columns differ from the stream's: missing {missing}, unexpected {extra}")
        row = {name: _parse(name, kind, data[name]) for name, kind in self.columns.items()}
        for name, value in row.items():
            if value is None:
                if name in self.not_null:
                    raise EventRejected(f"{name} is null; the suite requires a value")
                continue
            if name in self.allowed and value not in self.allowed[name]:
                raise EventRejected(f"{name} {value!r} is not one of the suite's values {sorted(self.allowed[name])}")
            low, high = self.bounds.get(name, (None, None))
            if (low is not None and value < low) or (high is not None and value > high):
                raise EventRejected(f"{name} {value!r} is outside the suite's bounds [{low}, {high}]")
        return row


def _parse(name: str, kind: str, value):
    if value is None:
        return None
    if kind in INTEGER_RANGES:
        if isinstance(value, bool) or not isinstance(value, int | float) or not float(value).is_integer():
            raise EventRejected(f"{name} {value!r} is not an integer ({kind})")
        limit = INTEGER_RANGES[kind]
        if not -limit <= value < limit:
            raise EventRejected(f"{name} {value!r} does not fit {kind}")
        return int(value)
    if kind == "float64":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise EventRejected(f"{name} {value!r} is not a number")
        if not math.isfinite(value):
            raise EventRejected(f"{name} is {value!r}; send null for a missing value, never NaN or infinity")
        return float(value)
    if kind == "string":
        if not isinstance(value, str):
            raise EventRejected(f"{name} {value!r} is not a string")
        return value
    try:
        instant = dt.datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        instant = None
    if instant is None or instant.tzinfo is None:
        raise EventRejected(f"{name} {value!r} is not an ISO 8601 timestamp with its offset")
    return instant.astimezone(dt.UTC)


@functools.cache
def _suite(name: str) -> list[dict]:
    return json.loads((REPO_ROOT / "expectations" / f"{name}.json").read_text())["expectations"]


def event_id(stream_name: str, stream: Stream, row: dict) -> str:
    """The event's identity from its key columns: a redelivery or a second publication has the same one."""
    parts = [row[c].isoformat() if isinstance(row[c], dt.datetime) else str(row[c]) for c in stream.key]
    return f"{stream_name}/" + "|".join(parts)


def event_time(stream: Stream, row: dict) -> dt.datetime | None:
    """When the event became known (UTC): its time column plus the stream's offset and minute columns; None
    when one of those is null (the event did not happen)."""
    spec = stream.event_time
    parts = [row[spec.column], *(row[c] for c in spec.plus_minutes)]
    if any(p is None for p in parts):
        return None
    return parts[0] + spec.plus + dt.timedelta(minutes=sum(parts[1:]))


def event_times(data, stream: Stream):
    """event_time of every row of an Arrow table, as one array (null where the event did not happen). In
    microseconds: a bound one microsecond past an instant (EventClock) must not round back onto it."""
    import pyarrow as pa
    import pyarrow.compute as pc

    spec = stream.event_time
    times = pc.add(pc.cast(data[spec.column], pa.timestamp("us", tz="UTC")), pa.scalar(spec.plus, pa.duration("us")))
    for column in spec.plus_minutes:
        micros = pc.cast(pc.round(pc.multiply(pc.cast(data[column], pa.float64()), 60_000_000)), pa.int64())
        times = pc.add(times, pc.cast(micros, pa.duration("us")))
    return times


def to_json(row: dict, columns: list[str]) -> dict:
    """The `columns` of a source row (Python values from Arrow) as an event's JSON payload."""
    return {k: (row[k].astimezone(dt.UTC).isoformat() if isinstance(row[k], dt.datetime) else row[k]) for k in columns}
