"""How a row gets its logical day (a local date in the use case's time zone), whatever its source."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.compute as pc

from pipelines.usecases.spec import SourceTable


def day_bounds(day: dt.date, tz: ZoneInfo) -> tuple[dt.datetime, dt.datetime]:
    """The local day [00:00, next 00:00) as UTC instants."""
    start = dt.datetime.combine(day, dt.time(), tz)
    return start.astimezone(dt.UTC), (start + dt.timedelta(days=1)).astimezone(dt.UTC)


def row_days(data: pa.Table, table: SourceTable, tz: ZoneInfo) -> pa.Array:
    """Each row's local date, from the table's `partition` columns (year, month and day of month, or the day of
    the year in its `year`) or its `event_time` (the timestamp's date in `tz`)."""
    import numpy as np

    if table.event_time is not None:
        local = data[table.event_time].to_pandas().dt.tz_convert(tz)
        return pa.array(local.dt.date, pa.date32())

    def column(name: str) -> np.ndarray:
        return pc.cast(data[name], pa.int64()).to_numpy(zero_copy_only=False)

    if len(table.partition) == 1:
        years, day_of_year = np.full(data.num_rows, table.year - 1970), column(table.partition[0])
        months = np.zeros(data.num_rows, dtype=np.int64)
    else:
        year, month, day_of_year = (column(name) for name in table.partition)
        years, months = year - 1970, month - 1
    dates = years.astype("M8[Y]").astype("M8[M]") + months.astype("m8[M]")
    return pa.array(dates.astype("M8[D]") + (day_of_year - 1).astype("m8[D]"), pa.date32())


def rows_of_day(data: pa.Table, day: dt.date, table: SourceTable, tz: ZoneInfo) -> pa.Table:
    """The rows of `data` whose local date is `day`."""
    return data.filter(pc.equal(row_days(data, table, tz), pa.scalar(day, pa.date32())))


def covered(data: pa.Table, table: SourceTable, tz: ZoneInfo) -> tuple[dt.date | None, dt.date | None]:
    """The first and last local dates of `data`'s rows (None, None when it has none)."""
    if data.num_rows == 0:
        return None, None
    bounds = pc.min_max(row_days(data, table, tz))
    return bounds["min"].as_py(), bounds["max"].as_py()
