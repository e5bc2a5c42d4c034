"""The Feast feature store over the dbt marts: apply, materialize, training sets, online reads."""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib.util
import io
import os
from dataclasses import dataclass
from urllib.parse import urlparse

from pipelines.features.request_time import prediction_time, schedule_features
from pipelines.features.transform import FEATURE_MARTS, MARTS_SCHEMA
from pipelines.security.secrets import postgres_connection
from pipelines.settings import REPO_ROOT, Settings

FEATURE_REPO = REPO_ROOT / "feature_repo"
FEATURE_SERVICE = "flight_delay_v1"
ENTITY_COLUMNS = ("flight_id", "carrier", "route", "tailnum_hash", "origin")
# Marts served by Feast views; `flights` is the entity and label table.
FEATURE_VIEW_MARTS = tuple(m for m in FEATURE_MARTS if m != "flights")


@dataclass(frozen=True)
class MaterializeResult:
    end: str
    online_keys: dict[str, int]


def feast_environment(settings: Settings) -> dict[str, str]:
    """The ${VAR}s that feature_repo/feature_store.<env>.yaml refers to."""
    env = {
        "PLATFORM_FEAST_DIR": str(settings.feast_dir),
        "PLATFORM_FEAST_ENV": settings.feast_env,
        "PLATFORM_FEATURE_EXPORT_DIR": str(settings.feature_export_dir),
    }
    if settings.feast_env == "production":
        pg = postgres_connection(settings)
        redis = urlparse(settings.redis_url)
        env.update(
            pg.environment(),
            PLATFORM_PG_PASSWORD=pg.password,
            PLATFORM_FEAST_REGISTRY_URL=pg.sqlalchemy_url("psycopg"),
            PLATFORM_REDIS_CONNECTION=f"{redis.hostname or '127.0.0.1'}:{redis.port or 6379},"
            f"db={(redis.path.lstrip('/') or '0')}",
        )
    return env


def feature_store(settings: Settings):
    """A FeatureStore for the configured environment (feature_repo/feature_store.<env>.yaml)."""
    os.environ.setdefault("FEAST_USAGE", "False")
    from feast import FeatureStore

    settings.feast_dir.mkdir(parents=True, exist_ok=True)
    os.environ.update(feast_environment(settings))
    return FeatureStore(
        repo_path=str(FEATURE_REPO), fs_yaml_file=FEATURE_REPO / f"feature_store.{settings.feast_env}.yaml"
    )


def export_marts(settings: Settings) -> dict[str, int]:
    """Local environment: write each feature mart to Parquet for the DuckDB offline store (atomic)."""
    import duckdb

    settings.feature_export_dir.mkdir(parents=True, exist_ok=True)
    rows = {}
    con = duckdb.connect(str(settings.warehouse_path), read_only=True)
    try:
        for mart in FEATURE_MARTS:
            target = settings.feature_export_dir / f"{mart}.parquet"
            tmp = target.with_name(f".{mart}.parquet.tmp")
            con.execute(f"COPY (SELECT * FROM {MARTS_SCHEMA}.{mart}) TO '{tmp}' (FORMAT parquet)")  # nosec B608 # identifiers are module constants; values are bound
            os.replace(tmp, target)
            rows[mart] = con.execute(f"SELECT count(*) FROM {MARTS_SCHEMA}.{mart}").fetchone()[0]  # nosec B608 # identifiers are module constants; values are bound
    finally:
        con.close()
    return rows


def apply_definitions(settings: Settings) -> list[str]:
    """`feast apply`: register feature_repo/features.py, removing objects no longer defined."""
    from feast.repo_operations import apply_total_with_repo_instance

    store = feature_store(settings)
    repo = _repo_contents()
    with contextlib.redirect_stdout(io.StringIO()):  # Feast prints every object's full diff
        apply_total_with_repo_instance(store, store.project, store.registry, repo, skip_source_validation=False)
    return sorted(view.name for view in store.list_feature_views())


def _repo_contents():
    """The objects defined in feature_repo/features.py, imported afresh (the environment may have changed)."""
    from feast import Entity, FeatureService, FeatureView
    from feast.data_source import DataSource
    from feast.repo_contents import RepoContents

    spec = importlib.util.spec_from_file_location("feature_repo_features", FEATURE_REPO / "features.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    objects = list(vars(module).values())

    def of(kind):
        return [obj for obj in objects if isinstance(obj, kind)]

    return RepoContents(
        projects=[],
        data_sources=of(DataSource),
        entities=of(Entity),
        feature_views=of(FeatureView),
        feature_services=of(FeatureService),
        on_demand_feature_views=[],
        stream_feature_views=[],
        label_views=[],
        permissions=[],
    )


def materialize(settings: Settings, end: dt.datetime) -> MaterializeResult:
    """Apply the definitions and bring the online store up to `end`; returns online keys per view.

    Each view is loaded from where its last run ended, but never from before `end - ttl`: the online
    store keeps one value per key, and a value older than the view's ttl would be overwritten by a
    newer one or is expired anyway. (Feast's own first incremental run starts at *now* - ttl, which
    misses replayed history; this starts from the data's time instead, so a first run, or one after
    months built in bulk, reads only the rows that can still be served.) The local offline store
    reads the Parquet exports that `export_marts` wrote after dbt build.
    """
    apply_definitions(settings)
    store = feature_store(settings)
    for view in store.list_feature_views():
        start = end - view.ttl if view.ttl else dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
        done = [interval[1] for interval in view.materialization_intervals]
        if done and max(done) > start:
            start = max(done)
        if start < end:
            store.materialize(start_date=start, end_date=end, feature_views=[view.name])
    return MaterializeResult(end=end.isoformat(), online_keys=online_key_counts(settings))


def online_key_counts(settings: Settings) -> dict[str, int]:
    """Entity keys held in the online store, per feature view."""
    if settings.feast_env == "local":
        import sqlite3

        path = settings.feast_dir / "online_store.db"
        if not path.exists():
            return {}
        with sqlite3.connect(path) as con:
            tables = {name for (name,) in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            return {
                view: con.execute(f'SELECT count(DISTINCT entity_key) FROM "flight_delay_{view}"').fetchone()[0]  # nosec B608 # identifiers are module constants; values are bound
                for view in FEATURE_VIEW_MARTS
                if f"flight_delay_{view}" in tables
            }
    import redis

    client = redis.Redis.from_url(settings.redis_url)
    # The Redis online store keeps one hash per entity key, holding every view of that entity.
    return {"entity_keys": sum(1 for _ in client.scan_iter(match=b"*flight_delay*", count=1000))}


def flight_labels(settings: Settings, start: dt.date, end: dt.date):
    """Each landed flight of [start, end] whose arrival is known: flight_id, is_late_arrival (0/1)."""
    query = f"""
        SELECT flight_id, is_late_arrival FROM {MARTS_SCHEMA}.flights
        WHERE flight_date BETWEEN '{start.isoformat()}' AND '{end.isoformat()}' AND is_late_arrival IS NOT NULL
    """  # nosec B608 # dates formatted from date objects, identifiers are module constants
    frame = _query_warehouse(settings, query)
    frame["is_late_arrival"] = frame["is_late_arrival"].astype("int64")
    return frame


def _query_warehouse(settings: Settings, query: str):
    import pandas as pd

    if settings.warehouse_target == "duckdb":
        import duckdb

        with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
            return con.execute(query).df()
    import sqlalchemy

    engine = sqlalchemy.create_engine(postgres_connection(settings).sqlalchemy_url("psycopg2"))
    try:
        with engine.connect() as con:
            return pd.read_sql(query, con)
    finally:
        engine.dispose()


def training_entities(settings: Settings, start: dt.date, end: dt.date, known_at: dt.datetime):
    """Flights scheduled in [start, end] whose outcome was known by `known_at`, as a Feast entity frame
    whose event_timestamp is each flight's prediction time (the start of its operations day)."""
    import pandas as pd

    # nosec B608 below: the dates are formatted from date objects and the identifiers are module constants.
    query = f"""
        SELECT {", ".join(ENTITY_COLUMNS)}, flight_date, scheduled_departure_at,
               scheduled_departure_local, is_late_arrival, label_available_at
        FROM {MARTS_SCHEMA}.flights
        WHERE flight_date BETWEEN '{start.isoformat()}' AND '{end.isoformat()}'
          AND is_late_arrival IS NOT NULL
          AND label_available_at <= '{known_at.isoformat()}'
        ORDER BY scheduled_departure_at, flight_id
    """  # nosec B608
    frame = _query_warehouse(settings, query)
    frame.insert(len(ENTITY_COLUMNS), "event_timestamp", prediction_time(frame.pop("flight_date")))
    frame = frame.drop(columns="scheduled_departure_at")
    frame["scheduled_departure_local"] = pd.to_datetime(frame["scheduled_departure_local"])
    frame["is_late_arrival"] = frame["is_late_arrival"].astype("int64")
    return frame


def build_training_set(settings: Settings, entities, feature_service: str = FEATURE_SERVICE):
    """Point-in-time-correct stored features plus request-time features for each entity row."""
    import pandas as pd

    store = feature_store(settings)
    service = store.get_feature_service(feature_service)
    job = store.get_historical_features(entity_df=entities, features=service)
    frame = job.to_df().sort_values(["scheduled_departure_local", "flight_id"]).reset_index(drop=True)
    # Feast returns every datetime column as UTC-aware; this one is a local wall clock.
    frame["scheduled_departure_local"] = frame["scheduled_departure_local"].dt.tz_localize(None)
    return pd.concat([frame, schedule_features(frame["scheduled_departure_local"])], axis=1)
