"""What a run produced, read back from where it lives: landed rows, validation outcomes,
feature rows, online-store keys, and where to look."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field

from pipelines.features.store import online_key_counts
from pipelines.features.transform import MARTS_SCHEMA
from pipelines.ingest.landing import manifest_path, partition_path
from pipelines.security.secrets import postgres_connection
from pipelines.settings import Settings
from pipelines.usecases.spec import UseCase


@dataclass
class IngestSummary:
    days: list[str]
    tables: list[str]  # the day-partitioned tables
    landed_rows: dict[str, dict[str, int]] = field(default_factory=dict)  # table -> day -> rows
    validation: dict[str, dict[str, str]] = field(default_factory=dict)  # table -> day -> outcome
    feature_rows: dict[str, int] = field(default_factory=dict)
    online_keys: dict[str, int] = field(default_factory=dict)
    data_docs: str = ""

    def render(self) -> str:
        lines = [f"Ingest of {self.days[0]} .. {self.days[-1]} ({len(self.days)} days)", ""]
        lines.append(f"{'day':<12}" + "".join(f"{t + ' rows':>15}{t + ' check':>16}" for t in self.tables))
        for day in self.days:
            cells = "".join(
                f"{self.landed_rows.get(t, {}).get(day, 0):>15}{self.validation.get(t, {}).get(day, 'missing'):>16}"
                for t in self.tables
            )
            lines.append(f"{day:<12}{cells}")
        lines += ["", "Feature marts (rows):"]
        lines += [f"  {mart:<22}{rows:>9}" for mart, rows in self.feature_rows.items()]
        lines += ["", "Online store (entity keys per feature view):"]
        lines += [f"  {view:<22}{keys:>9}" for view, keys in self.online_keys.items()]
        lines += ["", f"Data Docs: {self.data_docs}"]
        return "\n".join(lines)


def ingest_summary(settings: Settings, usecase: UseCase, first: dt.date, last: dt.date) -> IngestSummary:
    days = [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]
    summary = IngestSummary(days=[d.isoformat() for d in days], tables=usecase.sources.partitioned)
    for table in summary.tables:
        for day in days:
            manifest = manifest_path(partition_path(settings, table, day))
            if manifest.exists():
                summary.landed_rows.setdefault(table, {})[day.isoformat()] = json.loads(manifest.read_text())["rows"]
            result = settings.validation_dir / "results" / table / f"{day.isoformat()}.json"
            if result.exists():
                outcome = json.loads(result.read_text())
                state = "passed" if outcome["success"] else f"FAILED ({len(outcome['failed'])})"
                summary.validation.setdefault(table, {})[day.isoformat()] = f"{state} {outcome['evaluated']}"
    summary.feature_rows = mart_row_counts(settings, usecase)
    summary.online_keys = online_key_counts(settings, usecase)
    summary.data_docs = str(settings.validation_dir / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html")
    return summary


def mart_row_counts(settings: Settings, usecase: UseCase) -> dict[str, int]:
    """Rows in each of the use case's marts in the warehouse (0 for a mart not built yet)."""
    counts = {}
    if settings.warehouse_target == "duckdb":
        import duckdb

        if not settings.warehouse_path.exists():
            return {}
        with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
            existing = {name for (name,) in con.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = ?", [MARTS_SCHEMA]
            ).fetchall()}  # fmt: skip
            for mart in usecase.features.marts:
                counts[mart] = (
                    con.execute(f"SELECT count(*) FROM {MARTS_SCHEMA}.{mart}").fetchone()[0] if mart in existing else 0  # nosec B608 # identifiers from the validated spec; values are bound
                )
        return counts
    import psycopg2

    with psycopg2.connect(postgres_connection(settings).dsn()) as con, con.cursor() as cursor:
        for mart in usecase.features.marts:
            cursor.execute("SELECT to_regclass(%s)", (f"{MARTS_SCHEMA}.{mart}",))
            if cursor.fetchone()[0] is None:
                counts[mart] = 0
                continue
            cursor.execute(f"SELECT count(*) FROM {MARTS_SCHEMA}.{mart}")  # nosec B608 # identifiers from the validated spec; values are bound
            counts[mart] = cursor.fetchone()[0]
    return counts
