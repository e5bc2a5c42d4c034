"""The Feast feature store over the dbt marts: apply, materialize, training sets, online reads.

One store for the platform (feature_repo/feature_store.<env>.yaml): each use case brings its
definitions (its spec's `features.definitions`, in its folder), and `apply_definitions` registers
every use case's together, so applying one never removes another's views.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib.util
import io
import os
from dataclasses import dataclass
from urllib.parse import urlparse

from pipelines.errors import SettingsError
from pipelines.features.request_time import prediction_time, time_features
from pipelines.features.transform import MARTS_SCHEMA
from pipelines.security.secrets import postgres_connection
from pipelines.settings import REPO_ROOT, Settings
from pipelines.usecases.spec import UseCase, available, load_usecase

FEATURE_REPO = REPO_ROOT / "feature_repo"


@dataclass(frozen=True)
class MaterializeResult:
    end: str
    online_keys: dict[str, int]
    left_to_stream: list[str]  # views whose online values a stream has already brought past `end`


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


def export_marts(settings: Settings, usecase: UseCase) -> dict[str, int]:
    """Local environment: write each of the use case's marts to Parquet for the DuckDB offline store (atomic)."""
    import duckdb

    settings.feature_export_dir.mkdir(parents=True, exist_ok=True)
    rows = {}
    con = duckdb.connect(str(settings.warehouse_path), read_only=True)
    try:
        for mart in usecase.features.marts:
            target = settings.feature_export_dir / f"{mart}.parquet"
            tmp = target.with_name(f".{mart}.parquet.tmp")
            con.execute(f"COPY (SELECT * FROM {MARTS_SCHEMA}.{mart}) TO '{tmp}' (FORMAT parquet)")  # nosec B608 # identifiers from the validated spec; values are bound
            os.replace(tmp, target)
            rows[mart] = con.execute(f"SELECT count(*) FROM {MARTS_SCHEMA}.{mart}").fetchone()[0]  # nosec B608 # identifiers from the validated spec; values are bound
    finally:
        con.close()
    return rows


def apply_definitions(settings: Settings) -> list[str]:
    """`feast apply` of every use case's definitions, removing objects no longer defined."""
    from feast.repo_operations import apply_total_with_repo_instance

    store = feature_store(settings)
    repo = _repo_contents(settings)
    _rebase_online_tables(store)
    with contextlib.redirect_stdout(io.StringIO()):  # Feast prints every object's full diff
        # Sources are the platform's own mart exports: a use case not built yet has none, and Feast would
        # warn about each of its views on every apply; a missing export fails when the view is read.
        apply_total_with_repo_instance(store, store.project, store.registry, repo, skip_source_validation=True)
    return sorted(view.name for view in store.list_feature_views())


def _rebase_online_tables(store) -> None:
    """Point the registry's record of the SQLite online tables at this store's file.

    Feast records each table with the absolute path of its SQLite file, and `apply` tears down every
    recorded table whose record differs from the planned one. A data root that was copied or moved
    (a restore, a test's private copy) would therefore have its apply drop the tables of the root it
    came from, and leave its own copy's tables unrecorded. Same names, this store's file: nothing else
    changes, and the tables of another data root are never touched.
    """
    from feast.infra.online_stores.sqlite import SqliteTable

    if store.config.online_store.type != "sqlite":
        return
    path = str(store.config.online_store.path)
    infra = store.registry.get_infra(store.project)
    if all(o.path == path for o in infra.infra_objects if isinstance(o, SqliteTable)):
        return
    infra.infra_objects = [SqliteTable(path, o.name) if isinstance(o, SqliteTable) else o for o in infra.infra_objects]
    store.registry.update_infra(infra, store.project, commit=True)


def definitions_path(settings: Settings, usecase: UseCase):
    return settings.usecases_dir / usecase.name / usecase.features.definitions


def _repo_contents(settings: Settings):
    """The objects every use case's definitions file defines, imported afresh (the environment may have
    changed); a file that does not define its spec's FeatureService is refused, naming it."""
    from feast import Entity, FeatureService, FeatureView
    from feast.data_source import DataSource
    from feast.repo_contents import RepoContents

    objects = []
    for name in available(settings.usecases_dir):
        usecase = load_usecase(settings.usecases_dir, name, settings.usecase_overrides.get(name))
        f, path = usecase.features, definitions_path(settings, usecase)
        spec = importlib.util.spec_from_file_location(f"usecase_{name}_features", path)
        if spec is None or not path.is_file():
            raise SettingsError(
                f"{name}: features.definitions {path} does not exist; write its Feast definitions there"
            )
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        mine = list(vars(module).values())
        service = next((o for o in mine if isinstance(o, FeatureService) and o.name == f.feature_service), None)
        if service is None:
            raise SettingsError(
                f"{name}: {path} defines no FeatureService named {f.feature_service!r} (the spec's "
                "features.feature_service)"
            )
        served = sorted(p.name for p in service.feature_view_projections)
        if served != sorted(f.views):
            raise SettingsError(
                f"{name}: FeatureService {f.feature_service} serves the views {served}, but the spec's "
                f"features.marts name {sorted(f.views)} besides the entity mart: one view per mart, of the same name"
            )
        objects += mine

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


def materialize(
    settings: Settings, usecase: UseCase, end: dt.datetime, streamed_past_end: frozenset[str] = frozenset()
) -> MaterializeResult:
    """Apply the definitions and bring the use case's views in the online store up to `end`; returns
    online keys per view. Views in `streamed_past_end` are left alone: their stream has written newer
    values than the batch has, which a materialization would overwrite with older ones.

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
        if view.name not in usecase.features.views or view.name in streamed_past_end:
            continue
        start = end - view.ttl if view.ttl else dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
        done = [interval[1] for interval in view.materialization_intervals]
        if done and max(done) > start:
            start = max(done)
        if start < end:
            store.materialize(start_date=start, end_date=end, feature_views=[view.name])
    kept = sorted(streamed_past_end & set(usecase.features.views))
    return MaterializeResult(end.isoformat(), online_key_counts(settings, usecase), kept)


def delete_online_entities(settings: Settings, usecase: UseCase, join_key: str, values: list[str]) -> int:
    """Remove every online row of the use case's views keyed by `join_key` in `values` (an erasure); how many.
    Feast writes and reads online rows but deletes none by key, so this removes them from its stores directly,
    with Feast's own key encoding (SQLite: one row per feature; Redis: one hash per entity key)."""
    from feast.infra.key_encoding_utils import serialize_entity_key
    from feast.infra.online_stores.helpers import _redis_key
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    store = feature_store(settings)
    version = store.config.entity_key_serialization_version
    keys = [EntityKey(join_keys=[join_key], entity_values=[Value(string_val=v)]) for v in values]
    views = [v.name for v in store.list_feature_views() if v.name in usecase.features.views
             and [c.name for c in v.entity_columns] == [join_key]]  # fmt: skip
    if settings.feast_env != "local":
        import redis

        client = redis.Redis.from_url(settings.redis_url)
        return sum(client.delete(_redis_key(store.project, key, version)) for key in keys) if views else 0
    import sqlite3

    path, removed = settings.feast_dir / "online_store.db", 0
    if not path.exists():
        return 0
    with sqlite3.connect(path) as con:
        tables = {name for (name,) in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        for view in (v for v in views if f"{store.project}_{v}" in tables):
            for key in keys:
                removed += con.execute(f'DELETE FROM "{store.project}_{view}" WHERE entity_key = ?',  # nosec B608 # names from Feast's registry; the key is bound
                                       (serialize_entity_key(key, version),)).rowcount  # fmt: skip
    return removed


def online_key_counts(settings: Settings, usecase: UseCase) -> dict[str, int]:
    """Entity keys held in the online store, per feature view of the use case."""
    project = feature_store(settings).project
    if settings.feast_env == "local":
        import sqlite3

        path = settings.feast_dir / "online_store.db"
        if not path.exists():
            return {}
        with sqlite3.connect(path) as con:
            tables = {name for (name,) in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            return {
                view: con.execute(f'SELECT count(DISTINCT entity_key) FROM "{project}_{view}"').fetchone()[0]  # nosec B608 # identifiers from the validated spec; values are bound
                for view in usecase.features.views
                if f"{project}_{view}" in tables
            }
    import redis

    client = redis.Redis.from_url(settings.redis_url)
    # The Redis online store keeps one hash per entity key, holding every view of that entity.
    return {"entity_keys": sum(1 for _ in client.scan_iter(match=f"*{project}*".encode(), count=1000))}


def _label_dtype(usecase: UseCase) -> str:
    return "int64" if usecase.task == "binary_classification" else "float64"


def labels(settings: Settings, usecase: UseCase, start: dt.date, end: dt.date):
    """Each prediction of the days [start, end] whose label is known: the entity id and the label."""
    f = usecase.features
    query = f"""
        SELECT {f.entity_id}, {f.label.column} FROM {MARTS_SCHEMA}.{f.entity_mart}
        WHERE {f.day} BETWEEN '{start.isoformat()}' AND '{end.isoformat()}' AND {f.label.column} IS NOT NULL
    """  # nosec B608 # dates formatted from date objects, identifiers from the validated spec
    frame = query_warehouse(settings, query)
    frame[f.label.column] = frame[f.label.column].astype(_label_dtype(usecase))
    return frame


def query_warehouse(settings: Settings, query: str):
    """The rows of a read-only query of the warehouse (DuckDB file or PostgreSQL), as a DataFrame."""
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


def training_entities(settings: Settings, usecase: UseCase, start: dt.date, end: dt.date, known_at: dt.datetime):
    """The entity mart's rows of the days [start, end] whose label was known by `known_at`, as a Feast
    entity frame whose event_timestamp is each row's prediction time (the spec's `prediction.lead_time`):
    id, join keys, event_timestamp, the request's time and inputs, the label and when it became known."""
    import pandas as pd

    f = usecase.features
    keys = [f.entity_id, *f.join_keys]
    carried = [f.request_time.column, *f.request_inputs]
    query = f"""
        SELECT {", ".join(keys)}, {f.day}, {", ".join(carried)}, {f.label.column}, {f.label.available_at}
        FROM {MARTS_SCHEMA}.{f.entity_mart}
        WHERE {f.day} BETWEEN '{start.isoformat()}' AND '{end.isoformat()}'
          AND {f.label.column} IS NOT NULL
          AND {f.label.available_at} <= '{known_at.isoformat()}'
        ORDER BY {f.request_time.column}, {f.entity_id}
    """  # nosec B608 # dates formatted from date objects, identifiers from the validated spec
    frame = query_warehouse(settings, query)
    frame[f.request_time.column] = pd.to_datetime(frame[f.request_time.column])
    instant = prediction_time(usecase.prediction, frame.pop(f.day), frame[f.request_time.column], usecase.tz)
    frame.insert(len(keys), "event_timestamp", instant)
    frame[f.label.column] = frame[f.label.column].astype(_label_dtype(usecase))
    return frame


def build_training_set(settings: Settings, usecase: UseCase, entities):
    """Point-in-time-correct stored features plus request-time features for each entity row."""
    import pandas as pd

    f = usecase.features
    store = feature_store(settings)
    service = store.get_feature_service(f.feature_service)
    job = store.get_historical_features(entity_df=entities, features=service)
    frame = job.to_df().sort_values([f.request_time.column, f.entity_id]).reset_index(drop=True)
    # Feast returns every datetime column as UTC-aware; this one is a local wall clock.
    frame[f.request_time.column] = frame[f.request_time.column].dt.tz_localize(None)
    return pd.concat([frame, time_features(frame[f.request_time.column], f.request_time.prefix)], axis=1)
