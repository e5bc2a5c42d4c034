"""Every source kind against a real server, on the bike-rental use case's raw table: the same rows a day, in the
spec's types, as from its package file; PostgreSQL and MariaDB (database), a moto S3 bucket and a folder
(object_store), the DuckDB warehouse (warehouse). And what must go wrong loudly: an unreachable database lands
nothing, a column of the wrong type or a missing one is named, a bucket in the wrong region is refused and
audited before anything is read, an object store without the day's files says where it looked; an incremental
table lands a late update again in its own day, without duplicates, once."""

from __future__ import annotations

import datetime as dt
import io
import json
import re
import uuid

import boto3
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from pipelines.errors import MissingPartitionError, ResidencyViolation, SourceFormatError, SourceUnavailable
from pipelines.ingest import land_day, partition_path, relanded_days
from pipelines.ingest.landing import manifest_path
from pipelines.ingest.sources import extract_day, extract_whole
from pipelines.security.audit import audit_ledger
from pipelines.security.secrets import put_connection
from pipelines.settings import REPO_ROOT
from pipelines.usecases.spec import load_usecase, resolve_usecase, with_overrides
from tests.conftest import fresh_postgres_database, make_settings, require_service
from tests.integration.conftest import s3_connection

NAME, TABLE = "bike_rentals", "bikeshare_hours"
DAYS = [dt.date(2011, 5, 1), dt.date(2011, 5, 2), dt.date(2011, 5, 3)]
MARIADB_URL = "mysql+pymysql://root@127.0.0.1:3306/test"
UAE, IRELAND = "me-central-1", "eu-west-1"


def _spec(settings, **fields):
    """The bike table read another way: its spec entry with `fields` (None removes one)."""
    table = load_usecase(settings.usecases_dir, NAME).sources.tables[TABLE].model_dump(exclude_defaults=True)
    table = {k: v for k, v in {**table, **fields}.items() if v is not None}
    with_table = with_overrides(settings, NAME, {f"sources.tables.{TABLE}": table})
    return with_table, resolve_usecase(with_table, NAME)


@pytest.fixture(scope="module")
def bikes() -> pd.DataFrame:
    """The raw table as the package publishes it."""
    from pipelines.ingest.sources.package_file import default_source_dir

    spec = load_usecase(REPO_ROOT / "usecases", NAME)
    return pd.read_csv(default_source_dir(spec.sources) / spec.sources.tables[TABLE].file)


@pytest.fixture
def settings(tmp_path):
    return make_settings(tmp_path / "var")


def _canon(rows: pa.Table) -> pa.Table:
    """The same rows whatever the column order (an override's columns come sorted) and the row order."""
    rows = rows.select(sorted(rows.column_names))
    return rows.sort_by([(c, "ascending") for c in rows.column_names])


def _package_day(settings, day) -> pa.Table:
    return _canon(extract_day(settings, resolve_usecase(settings, NAME), TABLE, day).rows)


@pytest.fixture(scope="module")
def postgres(bikes):
    with fresh_postgres_database("sources") as url:
        engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg2://"))
        with engine.begin() as con:
            con.execute(sa.text("CREATE SCHEMA shop"))
        bikes.to_sql("bike_hours", engine, schema="shop", index=False)
        yield engine, url.rsplit("/", 1)[1]
        engine.dispose()


def _pg_connection(openbao, conn_id: str, database: str, port: int = 5432) -> None:
    put_connection(openbao.root, conn_id, {"conn_type": "postgres", "host": "127.0.0.1", "port": port,
                                           "login": "postgres", "password": "", "schema": database})  # fmt: skip


def test_a_postgresql_table_gives_each_day_the_package_files_rows_in_the_spec_types(settings, postgres, openbao):
    engine, database = postgres
    _pg_connection(openbao, "bikes_pg", database)
    chosen, usecase = _spec(settings, kind="database", file=None, connection="bikes_pg", table="shop.bike_hours")
    for day in DAYS:
        extract = extract_day(chosen, usecase, TABLE, day)
        assert _canon(extract.rows).equals(_package_day(settings, day)), day
    assert extract.lineage["kind"] == "database" and extract.lineage["connection"] == "bikes_pg"
    assert extract.lineage["parameters"] == {"day_of_year": DAYS[-1].timetuple().tm_yday}
    assert "FROM shop.bike_hours WHERE day = :day_of_year" in extract.lineage["query"]  # quoted where needed
    landed = land_day(chosen, usecase, DAYS[0])
    manifest = json.loads(manifest_path(partition_path(chosen, TABLE, DAYS[0])).read_text())
    assert manifest["source"]["query"] == landed[0].source["query"] and manifest["rows"] == 24


def test_a_query_with_a_missing_column_or_a_wrong_type_is_refused_naming_the_column(settings, postgres, openbao):
    engine, database = postgres
    _pg_connection(openbao, "bikes_pg", database)
    missing = "SELECT season, mnth, day, hr FROM shop.bike_hours"
    chosen, usecase = _spec(settings, kind="database", file=None, connection="bikes_pg", query=missing)
    offered = r"has no column\(s\) \['atemp', 'bikers', .*'workingday'\]; it offers \['season', 'mnth', 'day', 'hr'\]"
    with pytest.raises(SourceFormatError, match=offered):
        extract_day(chosen, usecase, TABLE, DAYS[0])
    wordy = ("SELECT season, mnth, day, hr, holiday, weekday, workingday, weathersit, temp, atemp, hum, windspeed, "
             "casual, registered, 'many' AS bikers FROM shop.bike_hours")  # fmt: skip
    chosen, usecase = _spec(settings, kind="database", file=None, connection="bikes_pg", query=wordy)
    with pytest.raises(SourceFormatError, match=r"column bikers is declared int32 but holds string \(e.g. 'many'\)"):
        land_day(chosen, usecase, DAYS[0])
    assert not partition_path(chosen, TABLE, DAYS[0]).exists(), "nothing landed"


def test_an_unreachable_database_lands_nothing_and_says_what_to_check(settings, openbao):
    _pg_connection(openbao, "bikes_down", "nowhere", port=1)  # nothing listens on port 1
    chosen, usecase = _spec(settings, kind="database", file=None, connection="bikes_down", table="shop.bike_hours")
    with pytest.raises(SourceUnavailable, match=r"connection bikes_down, 127.0.0.1:1/nowhere\) is unreachable: .*"
                                                "check the server and the connection in Vault"):  # fmt: skip
        land_day(chosen, usecase, DAYS[0])
    assert not (chosen.raw_dir / TABLE).exists()


def test_a_mariadb_table_gives_the_same_rows(settings, bikes, openbao):
    try:
        engine = sa.create_engine(MARIADB_URL)
        engine.connect().close()
    except sa.exc.OperationalError as exc:
        require_service(False, f"MariaDB is not reachable at {MARIADB_URL}: {exc}")
    name = f"bike_hours_{uuid.uuid4().hex[:8]}"
    bikes.to_sql(name, engine, index=False)
    try:
        put_connection(openbao.root, "bikes_maria", {"conn_type": "mysql", "host": "127.0.0.1", "port": 3306,
                                                     "login": "root", "password": "", "schema": "test"})  # fmt: skip
        chosen, usecase = _spec(settings, kind="database", file=None, connection="bikes_maria", table=name)
        extract = extract_day(chosen, usecase, TABLE, DAYS[1])
        assert _canon(extract.rows).equals(_package_day(settings, DAYS[1]))
        assert extract.lineage["dialect"] == "mysql"
        assert f"FROM {name} WHERE day = :day_of_year" in extract.lineage["query"]
    finally:
        with engine.begin() as con:
            con.execute(sa.text(f"DROP TABLE {name}"))
        engine.dispose()


def _put_days(client, bucket: str, prefix: str, bikes: pd.DataFrame) -> None:
    for day in DAYS:
        rows = bikes[bikes["day"] == day.timetuple().tm_yday]
        buffer = io.BytesIO()
        pq.write_table(pa.Table.from_pandas(rows, preserve_index=False), buffer)
        client.put_object(Bucket=bucket, Key=f"{prefix}/date={day.isoformat()}/part-0.parquet", Body=buffer.getvalue())


@pytest.fixture(scope="module")
def bucket(moto_endpoint, bikes):
    names = {}
    for region in (UAE, IRELAND):
        client = boto3.client("s3", region_name=region, endpoint_url=moto_endpoint, aws_access_key_id="testing",
                              aws_secret_access_key="testing")  # fmt: skip # pragma: allowlist secret
        names[region] = f"raw-bikes-{region}"
        client.create_bucket(Bucket=names[region], CreateBucketConfiguration={"LocationConstraint": region})
        _put_days(client, names[region], "hours", bikes)
    return names


def test_parquet_files_in_an_s3_bucket_give_each_day_the_same_rows(settings, openbao, moto_endpoint, bucket):
    s3_connection(openbao, "bikes_s3", moto_endpoint, UAE)
    chosen, usecase = _spec(settings, kind="object_store", file=None, partition=None, year=None,
                            uri=f"s3://{bucket[UAE]}/hours", layout="date={date}", connection="bikes_s3")  # fmt: skip
    for day in DAYS:
        extract = extract_day(chosen, usecase, TABLE, day)
        assert _canon(extract.rows).equals(_package_day(settings, day)), day
    [file] = extract.lineage["files"]
    assert extract.lineage["region"] == UAE and file["key"] == f"date={DAYS[-1]}/part-0.parquet"
    with pytest.raises(MissingPartitionError, match=r"no parquet files under s3://raw-bikes-me-central-1/hours/"
                                                    r"date=2011-06-01/.*layout 'date=\{date\}'"):  # fmt: skip
        extract_day(chosen, usecase, TABLE, dt.date(2011, 6, 1))


def test_a_bucket_outside_the_allowed_regions_is_refused_and_audited_before_anything_is_read(
    settings, openbao, moto_endpoint, bucket
):
    s3_connection(openbao, "bikes_s3", moto_endpoint, UAE)  # the connection claims the UAE; the bucket decides
    elsewhere = f"s3://{bucket[IRELAND]}/hours"
    chosen, usecase = _spec(settings, kind="object_store", file=None, partition=None, year=None, uri=elsewhere,
                            layout="date={date}", connection="bikes_s3")  # fmt: skip
    with pytest.raises(ResidencyViolation, match=rf"bucket {bucket[IRELAND]} is in {IRELAND}, outside the allowed"):
        land_day(chosen, usecase, DAYS[0])
    [record, _incident] = audit_ledger(chosen).records()
    assert (record.action, record.subject) == ("residency.violation", f"s3://{bucket[IRELAND]}")
    assert not (chosen.raw_dir / TABLE).exists()


def test_csv_files_in_a_folder_and_a_warehouse_table_give_the_same_rows(settings, tmp_path, bikes):
    import duckdb

    folder = tmp_path / "drop"
    for day in DAYS:
        (folder / f"{day:%Y/%m/%d}").mkdir(parents=True)
        bikes[bikes["day"] == day.timetuple().tm_yday].to_csv(folder / f"{day:%Y/%m/%d}" / "hours.csv", index=False)
    chosen, usecase = _spec(settings, kind="object_store", file=None, partition=None, year=None,
                            uri=folder.as_uri(), format="csv", layout="{year}/{month}/{day}")  # fmt: skip
    rows = extract_day(chosen, usecase, TABLE, DAYS[0]).rows
    assert _canon(rows).equals(_package_day(settings, DAYS[0]))

    settings.warehouse_path.parent.mkdir(parents=True)
    with duckdb.connect(str(settings.warehouse_path)) as con:
        con.execute("CREATE SCHEMA landing")
        con.register("bikes", bikes)
        con.execute("CREATE TABLE landing.bike_hours AS SELECT * FROM bikes")
    chosen, usecase = _spec(settings, kind="warehouse", file=None, table="landing.bike_hours")
    assert _canon(extract_day(chosen, usecase, TABLE, DAYS[2]).rows).equals(_package_day(settings, DAYS[2]))
    snapshot, usecase = _spec(settings, kind="warehouse", file=None, table="landing.bike_hours", partition=None,
                              year=None, snapshot=True, rows_per_day=None)  # fmt: skip
    assert usecase.sources.partitioned == [TABLE]  # a snapshot is still a day's partition: the extraction's day
    whole = extract_whole(snapshot, usecase, TABLE).rows
    assert extract_day(snapshot, usecase, TABLE, DAYS[0]).rows.num_rows == whole.num_rows == len(bikes)


@pytest.fixture
def orders():
    """A table with event and update times: the bike hours, each stamped with its hour and when it last changed."""
    with fresh_postgres_database("incremental") as url:
        engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg2://"))
        with engine.begin() as con:
            con.execute(sa.text("CREATE TABLE hours (day INTEGER, hr INTEGER, bikers INTEGER, "
                                "observed_at TIMESTAMPTZ, updated_at TIMESTAMPTZ)"))  # fmt: skip
            for day in DAYS:
                for hour in range(24):
                    at = dt.datetime.combine(day, dt.time(hour), dt.UTC)
                    con.execute(sa.text("INSERT INTO hours VALUES (:d, :h, :b, :at, :at + interval '1 hour')"),
                                {"d": day.timetuple().tm_yday, "h": hour, "b": 10 + hour, "at": at})  # fmt: skip
        yield engine, url.rsplit("/", 1)[1]
        engine.dispose()


def test_a_late_update_lands_again_in_its_own_day_once_and_without_duplicates(settings, orders, openbao):
    engine, database = orders
    _pg_connection(openbao, "orders_pg", database)
    table = {"kind": "database", "connection": "orders_pg", "table": "hours", "suite": "raw_bikeshare_hours",
             "columns": {"day": "int16", "hr": "int8", "bikers": "int32", "observed_at": "timestamp",
                         "updated_at": "timestamp"},
             "event_time": "observed_at",
             "incremental": {"updated_at": "updated_at", "key": ["day", "hr"]}}  # fmt: skip
    chosen = with_overrides(settings, NAME, {f"sources.tables.{TABLE}": table, "timezone": "UTC"})
    usecase = resolve_usecase(chosen, NAME)
    first = land_day(chosen, usecase, DAYS[0])
    assert [p.logical_date for p in first] == [DAYS[0].isoformat()] and first[0].rows == 24
    assert relanded_days(land_day(chosen, usecase, DAYS[1]), DAYS[1]) == [], "nothing changed yet"
    before = pq.read_table(partition_path(chosen, TABLE, DAYS[0]))
    with engine.begin() as con:  # a correction of 1 May's 08:00, made later
        con.execute(sa.text("UPDATE hours SET bikers = 999, updated_at = now() WHERE day = :d AND hr = 8"),
                    {"d": DAYS[0].timetuple().tm_yday})  # fmt: skip
    landed = land_day(chosen, usecase, DAYS[2])
    assert relanded_days(landed, DAYS[2]) == [DAYS[0]]
    after = pq.read_table(partition_path(chosen, TABLE, DAYS[0])).to_pandas()
    assert len(after) == 24 and after.set_index("hr").loc[8, "bikers"] == 999, "replaced, not appended"
    assert after.drop(columns="updated_at").set_index("hr").drop(8).equals(
        before.to_pandas().drop(columns="updated_at").set_index("hr").drop(8))  # fmt: skip
    manifest = json.loads(manifest_path(partition_path(chosen, TABLE, DAYS[0])).read_text())
    assert manifest["source"]["relanded_by"] == DAYS[2].isoformat() and manifest["source"]["rows"] == 1
    digest = manifest["sha256"]
    again = land_day(chosen, usecase, DAYS[2])  # a re-run: the change is in already, nothing lands again
    assert relanded_days(again, DAYS[2]) == [] and pq.read_table(partition_path(chosen, TABLE, DAYS[0])).num_rows == 24
    assert json.loads(manifest_path(partition_path(chosen, TABLE, DAYS[0])).read_text())["sha256"] == digest


def test_the_spec_names_what_a_kind_does_not_read(settings):
    from pipelines.usecases.spec import UseCaseError

    for fields, named in [
        ({"kind": "database", "file": None}, "names its `connection`"),
        ({"kind": "database", "file": None, "connection": "x", "table": "t", "query": "SELECT 1"}, "exactly one"),
        ({"kind": "database", "file": None, "connection": "x", "query": "DELETE FROM t"}, "a single SELECT"),
        ({"kind": "object_store", "file": None, "uri": "http://x"}, "must start with s3:// or file://"),
        (
            {
                "kind": "object_store",
                "file": None,
                "uri": "s3://b/p",
                "partition": None,
                "year": None,
                "layout": "daily",
            },
            "must place the day",
        ),
        ({"kind": "warehouse", "table": "landing.t"}, "file is not read by a warehouse table"),
        ({"event_time": "temp"}, "a row gets its day one way, not partition and event_time"),
        ({"partition": None, "year": None, "event_time": "temp"}, "must be a timestamp column (found: float64)"),
    ]:
        with pytest.raises(UseCaseError, match=re.escape(named)):
            _spec(settings, **fields)
