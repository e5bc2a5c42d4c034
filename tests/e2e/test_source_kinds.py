"""Bring your own data, worked on the bike-rental use case: its raw table loaded into a PostgreSQL table and into
day-partitioned Parquet files in an S3 bucket (moto), and its ingest DAG run by Airflow (`airflow dags test`) from
each kind as from its package file. Each kind lands, validates and builds the same days; the marts and the training
set are equal to the package file's, and each landed partition says what it was read from."""

from __future__ import annotations

import datetime as dt
import io
import json

import boto3
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from pipelines.features.store import build_training_set, query_warehouse, training_entities
from pipelines.ingest import partition_path
from pipelines.ingest.landing import manifest_path
from pipelines.ingest.sources.package_file import default_source_dir
from pipelines.orchestration import local_airflow
from pipelines.security.secrets import put_connection
from pipelines.usecases.spec import resolve_usecase
from tests.conftest import fresh_postgres_database, make_settings
from tests.e2e.conftest import dags_test
from tests.integration.conftest import moto_endpoint, s3_connection  # noqa: F401  (a session fixture, shared)

pytestmark = pytest.mark.e2e
NAME, TABLE, UAE = "bike_rentals", "bikeshare_hours", "me-central-1"
DAYS = [dt.date(2011, 1, 1), dt.date(2011, 1, 2)]
MARTS = ["bike_hours", "hourly_demand", "daily_demand"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, openbao, moto_endpoint):  # noqa: F811
    from pipelines.settings import REPO_ROOT
    from pipelines.usecases.spec import load_usecase

    spec = load_usecase(REPO_ROOT / "usecases", NAME)
    bikes = pd.read_csv(default_source_dir(spec.sources) / spec.sources.tables[TABLE].file)
    published = spec.sources.tables[TABLE].model_dump(exclude_defaults=True)
    root = tmp_path_factory.mktemp("kinds")
    with fresh_postgres_database("kinds") as url:
        engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg2://"))
        bikes.to_sql("bike_hours", engine, index=False)
        engine.dispose()
        put_connection(openbao.root, "bikes_oltp", {"conn_type": "postgres", "host": "127.0.0.1", "port": 5432,
                                                    "login": "postgres", "schema": url.rsplit("/", 1)[1]})  # fmt: skip
        client = boto3.client("s3", region_name=UAE, endpoint_url=moto_endpoint, aws_access_key_id="testing",
                              aws_secret_access_key="testing")  # fmt: skip # pragma: allowlist secret
        client.create_bucket(Bucket="bikes-raw", CreateBucketConfiguration={"LocationConstraint": UAE})
        for day in DAYS:
            buffer = io.BytesIO()
            rows = bikes[bikes["day"] == day.timetuple().tm_yday]
            pq.write_table(pa.Table.from_pandas(rows, preserve_index=False), buffer)
            client.put_object(Bucket="bikes-raw", Key=f"hours/date={day}/part-0.parquet", Body=buffer.getvalue())
        s3_connection(openbao, "bikes_drop", moto_endpoint, UAE)
        kinds = {
            "package_file": published,
            "database": {**published, "kind": "database", "connection": "bikes_oltp", "table": "bike_hours"},
            "object_store": {**published, "kind": "object_store", "uri": "s3://bikes-raw/hours",
                             "layout": "date={date}", "connection": "bikes_drop", "partition": None, "year": None},
        }  # fmt: skip
        outcome = {}
        for n, (kind, table) in enumerate(kinds.items()):
            table = {k: v for k, v in table.items() if k != "file" or kind == "package_file"}
            settings = make_settings(root / kind / "var", airflow_home=root / "airflow",
                                     usecase_overrides={NAME: {f"sources.tables.{TABLE}": table}})  # fmt: skip
            if n == 0:
                local_airflow.prepare(settings)  # one Airflow for the three: each run reads its own data root
            states = [dags_test(settings, spec, "ingest", day) for day in DAYS]
            outcome[kind] = (settings, states)
    return outcome


def _marts(settings) -> dict[str, pd.DataFrame]:
    return {mart: query_warehouse(settings, f"SELECT * FROM marts.{mart} ORDER BY ALL") for mart in MARTS}  # nosec B608 # test constants


def _training_set(settings) -> pd.DataFrame:
    usecase = resolve_usecase(settings, NAME)
    known = dt.datetime.combine(DAYS[-1] + dt.timedelta(days=1), dt.time(), usecase.tz)
    entities = training_entities(settings, usecase, DAYS[0], DAYS[-1], known)
    return build_training_set(settings, usecase, entities).sort_values("hour_id").reset_index(drop=True)


def test_every_kind_lands_validates_and_builds_each_day_through_the_dag(runs):
    for kind, (_, states) in runs.items():
        for day, state in zip(DAYS, states, strict=True):
            assert state == {"land": "success", "validate": "success", "transform": "success",
                             "materialize": "success"}, (kind, day, state)  # fmt: skip


def test_the_marts_and_the_training_set_equal_the_package_files(runs):
    reference, _ = runs["package_file"]
    marts, training = _marts(reference), _training_set(reference)
    assert len(marts["bike_hours"]) == 47 and len(training) == 47  # 1 and 2 January 2011: 24 and 23 hours
    for kind in ("database", "object_store"):
        settings, _ = runs[kind]
        for mart, frame in _marts(settings).items():
            pd.testing.assert_frame_equal(frame, marts[mart], obj=f"{kind} marts.{mart}")
        pd.testing.assert_frame_equal(_training_set(settings), training, obj=f"{kind} training set")


def test_each_landed_partition_says_what_it_was_read_from(runs):
    read = {kind: json.loads(manifest_path(partition_path(settings, TABLE, DAYS[0])).read_text())["source"]
            for kind, (settings, _) in runs.items()}  # fmt: skip
    assert read["package_file"]["kind"] == "package_file" and read["package_file"]["file"].endswith("Bikeshare.csv")
    assert read["database"]["connection"] == "bikes_oltp" and read["database"]["parameters"] == {"day_of_year": 1}
    assert read["database"]["rows"] == 24 and "FROM bike_hours WHERE day = :day_of_year" in read["database"]["query"]
    [file] = read["object_store"]["files"]
    assert read["object_store"]["region"] == UAE and file["key"] == "date=2011-01-01/part-0.parquet"
