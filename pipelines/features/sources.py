"""The Feast data source of a dbt mart, for a use case's feature definitions (usecases/<name>/features.py).

One set of definitions serves every environment; only the source class differs: the Parquet
export of the mart locally (DuckDB offline store), the marts schema in PostgreSQL in production.
pipelines.features.store sets the environment variables below from the platform settings before
it imports the definitions, like the ${VAR}s of feature_repo/feature_store.<env>.yaml.
"""

from __future__ import annotations

import os
from pathlib import Path

from pipelines.features.transform import MARTS_SCHEMA


def mart_source(mart: str, timestamp_field: str = "feature_timestamp"):
    """The source of the feature view over `mart` (a feature view is named after its mart)."""
    if os.environ.get("PLATFORM_FEAST_ENV", "local") == "production":
        from feast.infra.offline_stores.contrib.postgres_offline_store.postgres_source import PostgreSQLSource

        return PostgreSQLSource(name=mart, table=f"{MARTS_SCHEMA}.{mart}", timestamp_field=timestamp_field)
    from feast import FileSource

    export_dir = Path(os.environ.get("PLATFORM_FEATURE_EXPORT_DIR", "var/features"))
    return FileSource(name=mart, path=str(export_dir / f"{mart}.parquet"), timestamp_field=timestamp_field)
