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

import csv
import datetime as dt
import functools
import json
import math
import zoneinfo
from dataclasses import dataclass, field

from pipelines.settings import REPO_ROOT
from pipelines.usecases.spec import SourceTable
from pipelines.usecases.streaming import SEEDS, EventTime, Stream

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


class Timing:
    """When a stream's events became known: the spec's `event_time`, with the time zone of each place a local clock
    is read in (`zones`: place -> IANA zone). A row missing a part of its time, or a place without a zone, has
    none: the event did not happen, or cannot be placed (dead-lettered with that reason)."""

    def __init__(self, spec: EventTime, zones: dict[str, str] | None = None):
        self.spec, self.zones = spec, dict(zones or {})
        self._key = (spec.model_dump_json(), tuple(sorted(self.zones.items())))

    def at(self, row: dict) -> dt.datetime | None:
        """The event time (UTC) of one event's parsed columns."""
        spec = self.spec
        minutes = [row[c] for c in spec.plus_minutes]
        base = row[spec.column] if spec.local is None else self._local(row)
        if base is None or any(m is None for m in minutes):
            return None
        return base + spec.plus + dt.timedelta(minutes=sum(minutes))

    def of(self, data):
        """`at` of every row of an Arrow table, as one array (null where the event did not happen). In
        microseconds: a bound one microsecond past an instant (EventClock) must not round back onto it."""
        import pyarrow as pa
        import pyarrow.compute as pc

        spec = self.spec
        base = _cast_us(data[spec.column]) if spec.local is None else self._locals(data)
        times = pc.add(base, pa.scalar(spec.plus, pa.duration("us")))
        for column in spec.plus_minutes:
            micros = pc.cast(pc.round(pc.multiply(pc.cast(data[column], pa.float64()), 60_000_000)), pa.int64())
            times = pc.add(times, pc.cast(micros, pa.duration("us")))
        return times

    def _local(self, row: dict) -> dt.datetime | None:
        local, zone = self.spec.local, self.zones.get(row[self.spec.zone.column])
        parts = [row[c] for c in (*local.date, local.clock)]
        if zone is None or any(p is None for p in parts):
            return None
        after = row[local.next_day_before] if local.next_day_before else None
        wall = dt.datetime(*parts[:3]) + dt.timedelta(
            days=1 if after is not None and parts[3] < after else 0, hours=parts[3] // 100, minutes=parts[3] % 100
        )
        return wall_to_utc(wall, zone)

    def _locals(self, data):
        """The local clocks of a table as UTC instants, vectorised per zone (cached: the replayer asks for the same
        table's times at every step of the clock)."""
        cache_key = (id(data), self._key)
        if cache_key in _LOCAL_TIMES and _LOCAL_TIMES[cache_key][0] is data:
            return _LOCAL_TIMES[cache_key][1]
        import numpy as np
        import pandas as pd
        import pyarrow as pa

        local, place = self.spec.local, self.spec.zone.column
        frame = data.select(list(dict.fromkeys(self.spec.columns))).to_pandas()
        year, month, day = (frame[c] for c in local.date)
        clock = frame[local.clock].astype("float64")
        wall = pd.to_datetime(pd.DataFrame({"year": year, "month": month, "day": day}), errors="coerce")
        later = (clock < frame[local.next_day_before].astype("float64")) if local.next_day_before else False
        wall = wall + pd.to_timedelta(np.where(later, 1, 0), unit="D")
        wall = wall + pd.to_timedelta(np.floor(clock / 100) * 60 + np.mod(clock, 100), unit="min")
        utc = pd.Series(pd.NaT, index=frame.index, dtype="datetime64[us, UTC]")
        zones = frame[place].map(self.zones)
        for zone, rows in wall.groupby(zones).groups.items():
            walls = wall[rows]
            placed = walls.dt.tz_localize(zone, ambiguous=np.zeros(len(walls), dtype=bool), nonexistent="NaT")
            utc[rows] = placed.dt.tz_convert("UTC")
            gaps = walls.notna() & utc[rows].isna()  # in a spring-forward gap: as wall_to_utc places them
            for i in walls.index[gaps]:
                utc[i] = wall_to_utc(walls[i].to_pydatetime(), zone)
        times = pa.array(utc, type=pa.timestamp("us", tz="UTC"), from_pandas=True)
        if len(_LOCAL_TIMES) >= 8:
            _LOCAL_TIMES.pop(next(iter(_LOCAL_TIMES)))
        _LOCAL_TIMES[cache_key] = (data, times)
        return times


_LOCAL_TIMES: dict = {}


def wall_to_utc(wall: dt.datetime, zone: str) -> dt.datetime:
    """A local wall clock in `zone` as a UTC instant, as the warehouse's `AT TIME ZONE` places it (DuckDB and
    PostgreSQL agree): a clock the autumn change repeats is standard time (the later instant), one the spring
    change skips keeps the offset before the change (02:30 is read as 03:30 of the new offset)."""
    tz = zoneinfo.ZoneInfo(zone)
    early, late = (wall.replace(tzinfo=tz, fold=f).astimezone(dt.UTC) for f in (0, 1))
    repeated = late.astimezone(tz).replace(tzinfo=None) == wall  # fold 1 is a real reading of the clock
    return late if repeated else early


def timing(settings, usecase, stream: Stream) -> Timing:
    """The Timing of `stream` of `usecase`: with a local clock, the zones of its reference table (and dbt seed)."""
    zone = stream.event_time.zone
    if zone is None:
        return Timing(stream.event_time)
    from pipelines.ingest.sources import extract_whole

    table = extract_whole(settings, usecase, zone.table).rows
    zones = {k: v for k, v in zip(table[zone.key].to_pylist(), table[zone.name].to_pylist(), strict=True) if k and v}
    if zone.seed:
        with (SEEDS / f"{zone.seed}.csv").open(newline="") as seed:
            for row in csv.DictReader(seed):
                zones.setdefault(row[zone.key], row[zone.name])
    return Timing(stream.event_time, zones)


def _cast_us(column):
    import pyarrow as pa
    import pyarrow.compute as pc

    return pc.cast(column, pa.timestamp("us", tz="UTC"))


def to_json(row: dict, columns: list[str]) -> dict:
    """The `columns` of a source row (Python values from Arrow) as an event's JSON payload."""
    return {k: (row[k].astimezone(dt.UTC).isoformat() if isinstance(row[k], dt.datetime) else row[k]) for k in columns}
