"""The prediction log: every answered request, losslessly, in date-partitioned Parquet.

Each request's rows are written to their own file (temp name, then renamed) before the response
leaves the service, so a 200 means the prediction is on disk.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.settings import Settings


def log_dir(settings: Settings) -> Path:
    return settings.data_root / "predictions"


def write(settings: Settings, request_id: str, rows: list[dict]) -> Path:
    now = dt.datetime.now(dt.UTC)
    folder = log_dir(settings) / f"date={now.date().isoformat()}"
    folder.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pylist([{**row, "request_id": request_id, "logged_at": now} for row in rows])
    target = folder / f"{request_id}.parquet"
    temp = folder / f".{request_id}.parquet.tmp"
    pq.write_table(table, temp)
    os.replace(temp, target)
    return target


def read(settings: Settings, day: dt.date | None = None):
    """All logged predictions (of one UTC day) as a DataFrame."""
    import pandas as pd

    folders = [log_dir(settings) / f"date={day.isoformat()}"] if day else sorted(log_dir(settings).glob("date=*"))
    files = [f for folder in folders if folder.exists() for f in sorted(folder.glob("*.parquet"))]
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True) if files else pd.DataFrame()
