"""`kind: database` and `kind: warehouse`: a table or a SELECT of a SQL database, read a day at a time.

The day is pushed into the query: `event_time` between the local day's bounds (as UTC instants), the
`partition` columns equal to the day's, or nothing for a `snapshot` (the whole table as it is now). A
`database` is reached through an Airflow connection kept in Vault (conn_type postgres, or mysql for MariaDB
and MySQL, through SQLAlchemy), read in a READ ONLY transaction with a server-side cursor, `chunk_rows` rows
at a time, so a large day streams instead of filling memory at once (give the connection a read-only role
too: the transaction is a second fence, not the first). A `warehouse` table is read from the platform's own
warehouse (DuckDB file or PostgreSQL). Rows are sorted on every column before they land, so the same rows
land as the same bytes whatever order the server returned them in.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pyarrow as pa

from pipelines.errors import MissingPartitionError, SourceFormatError, SourceUnavailable
from pipelines.ingest.sources.days import day_bounds
from pipelines.ingest.sources.typed import column_array, conform, schema_of
from pipelines.settings import Settings
from pipelines.usecases.spec import UseCase

DRIVERS = {"postgres": "postgresql+psycopg2", "postgresql": "postgresql+psycopg2", "mysql": "mysql+pymysql",
           "mariadb": "mysql+pymysql"}  # fmt: skip


class SqlSource:
    """The rows of one spec table from a SQL database; subclasses say where and how they are fetched."""

    def __init__(self, settings: Settings, usecase: UseCase, name: str):
        self.settings, self.usecase, self.name = settings, usecase, name
        self.table = usecase.sources.tables[name]

    def whole(self) -> tuple[pa.Table, dict]:
        return self._read("", {})

    def day(self, day: dt.date) -> tuple[pa.Table, dict]:
        where, params = self._day_filter(day)
        return self._read(where, params)

    def changed_since(self, mark: dt.datetime | None) -> tuple[pa.Table, dict]:
        """The rows whose `incremental.updated_at` is at or after `mark` (every row when None): a change in the
        same second as the mark is read again rather than missed; merging it again changes nothing."""
        column = self.quote(self.table.incremental.updated_at)
        return self._read(f"{column} >= :mark", {"mark": mark}) if mark else self._read("", {})

    def statement(self, where: str, columns: str | None = None) -> str:
        """The spec's columns only (nothing else of a wide table leaves the source) of the table or query."""
        columns = columns or ", ".join(self.quote(name) for name in self.table.columns)
        if self.table.table:
            relation = ".".join(self.quote(part) for part in self.table.table.split("."))
        else:
            relation = f"({self.table.query}) AS source_rows"
        return f"SELECT {columns} FROM {relation}" + (f" WHERE {where}" if where else "")  # nosec B608 # identifiers from the validated spec, quoted; values bound

    def _day_filter(self, day: dt.date) -> tuple[str, dict]:
        table = self.table
        if table.snapshot:
            return "", {}
        if table.event_time is not None:
            start, end = day_bounds(day, self.usecase.tz)
            column = self.quote(table.event_time)
            return f"{column} >= :start AND {column} < :end", {"start": start, "end": end}
        if len(table.partition) == 1:
            if day.year != table.year:
                raise MissingPartitionError(f"{self.where} holds {table.year} only (its `year`); {day} is not in it")
            return f"{self.quote(table.partition[0])} = :day_of_year", {"day_of_year": day.timetuple().tm_yday}
        year, month, day_of_month = (self.quote(c) for c in table.partition)
        return (f"{year} = :year AND {month} = :month AND {day_of_month} = :day",
                {"year": day.year, "month": day.month, "day": day.day})  # fmt: skip

    def _read(self, where: str, params: dict) -> tuple[pa.Table, dict]:
        offered = next(self.fetch(self.statement("1 = 0", "*"), {})).column_names
        missing = [name for name in self.table.columns if name not in offered]
        if missing:
            raise SourceFormatError(
                f"{self.where} has no column(s) {missing}; it offers {offered}. Add them to the table (or the query), "
                "or remove them from the spec's columns"
            )
        sql = self.statement(where)
        chunks = [conform(self.where, self.table, chunk) for chunk in self.fetch(sql, params)]
        data = pa.concat_tables(chunks) if chunks else schema_of(self.table).empty_table()
        data = data.sort_by([(name, "ascending") for name in data.column_names])
        lineage = {**self.origin(), "query": sql, "parameters": {k: _plain(v) for k, v in params.items()},
                   "rows": data.num_rows}  # fmt: skip
        return data, lineage

    @property
    def where(self) -> str:
        raise NotImplementedError

    def quote(self, name: str) -> str:
        raise NotImplementedError

    def fetch(self, sql: str, params: dict) -> Iterator[pa.Table]:
        raise NotImplementedError

    def origin(self) -> dict:
        raise NotImplementedError


class Database(SqlSource):
    """`kind: database`: a transactional database through an Airflow connection in Vault."""

    def __init__(self, settings: Settings, usecase: UseCase, name: str):
        import sqlalchemy as sa

        from pipelines.security.secrets import connection
        from pipelines.security.vault import Vault

        super().__init__(settings, usecase, name)
        self.conn_id = self.table.connection
        fields = connection(Vault.from_settings(settings), self.conn_id)
        driver = DRIVERS.get(str(fields.get("conn_type", "")).lower())
        if driver is None:
            raise SourceFormatError(
                f"connection {self.conn_id!r} has conn_type {fields.get('conn_type')!r}; a database source reads "
                f"{sorted(DRIVERS)} (SQLAlchemy drivers psycopg2, PyMySQL)"
            )
        self.address = f"{fields.get('host')}:{fields.get('port') or ''}/{fields.get('schema') or ''}"
        url = sa.engine.URL.create(
            driver, username=fields.get("login") or None, password=fields.get("password") or None,
            host=fields.get("host"), port=int(fields["port"]) if fields.get("port") else None,
            database=fields.get("schema") or None,
        )  # fmt: skip
        self.engine = sa.create_engine(url, pool_pre_ping=False, connect_args={"connect_timeout": 10})
        self.preparer = self.engine.dialect.identifier_preparer

    @property
    def where(self) -> str:
        return f"database source {self.usecase.name}.{self.name} (connection {self.conn_id}, {self.address})"

    def quote(self, name: str) -> str:
        return self.preparer.quote(name)

    def origin(self) -> dict:
        return {"kind": "database", "connection": self.conn_id, "dialect": self.engine.dialect.name}

    def fetch(self, sql: str, params: dict) -> Iterator[pa.Table]:
        yield from fetch_sqlalchemy(self.engine, sql, params, self.where, self)


class WarehouseTable(SqlSource):
    """`kind: warehouse`: a table of the platform's own warehouse (the settings' DuckDB file or PostgreSQL)."""

    @property
    def where(self) -> str:
        return f"warehouse source {self.usecase.name}.{self.name} ({self.settings.warehouse_target})"

    def quote(self, name: str) -> str:
        return '"' + name.replace('"', '""') + '"'  # DuckDB and PostgreSQL alike

    def origin(self) -> dict:
        return {"kind": "warehouse", "target": self.settings.warehouse_target}

    def fetch(self, sql: str, params: dict) -> Iterator[pa.Table]:
        if self.settings.warehouse_target == "postgres":
            import sqlalchemy as sa

            from pipelines.security.secrets import postgres_connection

            engine = sa.create_engine(postgres_connection(self.settings).sqlalchemy_url("psycopg2"))
            try:
                yield from fetch_sqlalchemy(engine, sql, params, self.where, self)
            finally:
                engine.dispose()
            return
        import duckdb

        path = self.settings.warehouse_path
        if not path.exists():
            raise SourceUnavailable(f"{self.where}: the warehouse {path} does not exist yet")
        named = sql
        for key in params:
            named = named.replace(f":{key}", f"${key}")
        with duckdb.connect(str(path), read_only=True) as con:
            try:
                reader = con.execute(named, params).fetch_record_batch(self.table.chunk_rows)
            except duckdb.Error as exc:
                raise SourceFormatError(
                    f"{self.where}: the query failed: {exc}; check its `table` or `query`"
                ) from None
            fetched = False
            for batch in reader:
                fetched = True
                yield pa.Table.from_batches([batch])
            if not fetched:  # no row: still the columns
                yield reader.schema.empty_table()


def fetch_sqlalchemy(engine, sql: str, params: dict, where: str, source: SqlSource) -> Iterator[pa.Table]:
    """`sql` in a READ ONLY transaction through a server-side cursor, `chunk_rows` rows at a time."""
    import sqlalchemy as sa

    if engine.dialect.name == "mysql":  # DATETIME has no zone: compare in UTC, as typed.py reads it back
        params = {k: v.astimezone(dt.UTC).replace(tzinfo=None) if isinstance(v, dt.datetime) else v
                  for k, v in params.items()}  # fmt: skip
    chunk = source.table.chunk_rows
    try:
        con = engine.connect()
    except sa.exc.OperationalError as exc:
        raise SourceUnavailable(
            f"{where} is unreachable: {str(exc.orig).strip().splitlines()[0]}; check the server and the connection "
            "in Vault (nothing was landed)"
        ) from None
    with con:
        try:
            con.exec_driver_sql("SET TRANSACTION READ ONLY")
            result = con.execution_options(stream_results=True, yield_per=chunk).execute(sa.text(sql), params)
            names, fetched = list(result.keys()), False
            for rows in result.partitions(chunk):
                fetched = True
                columns = zip(names, zip(*rows, strict=True), strict=True)
                yield pa.table(
                    {name: column_array(where, source.table, name, list(values)) for name, values in columns}
                )
            if not fetched:  # no row: still the columns, so that a missing one is named
                yield pa.table({name: pa.nulls(0) for name in names})
        except sa.exc.DBAPIError as exc:
            raise SourceFormatError(
                f"{where}: the query failed: {str(exc.orig).strip().splitlines()[0]}; check its `table` or `query` "
                f"({sql})"
            ) from None
        finally:
            con.rollback()  # read only: nothing to keep


def _plain(value):
    return value.isoformat() if isinstance(value, dt.datetime | dt.date) else value
