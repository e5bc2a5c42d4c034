"""dbt-duckdb plugin: registers the `pii_hash` UDF with the salt held in process memory only."""

from __future__ import annotations

import os

from dbt.adapters.duckdb.plugins import BasePlugin

from pipelines.features.pii import SALT_ENV, hash_pii


class Plugin(BasePlugin):
    def configure_connection(self, conn) -> None:
        salt = os.environ.get(SALT_ENV)
        if not salt:
            raise RuntimeError(
                f"{SALT_ENV} is not set: run dbt through `platform transform` (pipelines.features), "
                "which passes the PII salt from the platform settings"
            )
        conn.create_function(
            "pii_hash",
            lambda value: hash_pii(value, salt),
            ["VARCHAR"],
            "VARCHAR",
            null_handling="special",
        )
