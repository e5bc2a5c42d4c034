"""`platform new-usecase`: a skeleton that passes the integrity checks at once (its spec loads, its
DAGs parse with their docs, tags, retries and light top level, its dbt models parse, its Feast
definitions register) and whose own data tests fail, naming what to fill in, until the author does."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from pipelines.cli import main
from pipelines.errors import SettingsError
from pipelines.settings import REPO_ROOT, load_settings
from pipelines.usecases.scaffold import DAG_KINDS, new_usecase
from pipelines.usecases.spec import load_usecase

NAME = "taxi_fares"
# DagBag of a folder, with the use cases of PLATFORM_USECASES_DIR: what the DAG integrity tests check.
DAGBAG = """
import json, sys
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
print(json.dumps({"errors": {k: str(v)[-500:] for k, v in bag.import_errors.items()},
                  "dags": {i: {"tags": sorted(d.tags), "doc": d.doc_md or "", "owner": d.owner,
                               "untimed": [t.task_id for t in d.tasks if not t.retries or t.execution_timeout is None]}
                           for i, d in bag.dags.items()}}))
"""


@pytest.fixture(scope="module")
def scaffolded(tmp_path_factory):
    root = tmp_path_factory.mktemp("repo")
    shutil.copytree(REPO_ROOT / "dbt", root / "dbt", ignore=shutil.ignore_patterns("target", "logs"))
    assert main(["new-usecase", NAME, "--title", "Taxi fares", "--root", str(root)]) == 0
    return root


def test_the_skeleton_has_every_part_of_a_use_case(scaffolded):
    mine = [p for p in scaffolded.rglob("*") if p.is_file() and ("taxi_fares" in p.name or "taxi_fares" in p.parts)]
    files = sorted(str(p.relative_to(scaffolded)) for p in mine)
    assert files == sorted([
        "dags/taxi_fares_backfill.py", "dags/taxi_fares_batch_scoring.py", "dags/taxi_fares_deploy.py",
        "dags/taxi_fares_housekeeping.py",
        "dags/taxi_fares_ingest.py",
        "dags/taxi_fares_monitoring.py",
        "dags/taxi_fares_training.py", "dbt/models/taxi_fares/marts/_taxi_fares__models.yml",
        "dbt/models/taxi_fares/marts/taxi_fares_daily.sql", "dbt/models/taxi_fares/marts/taxi_fares_rows.sql",
        "dbt/models/taxi_fares/staging/taxi_fares/_taxi_fares__sources.yml",
        "dbt/models/taxi_fares/staging/taxi_fares/stg_taxi_fares__events.sql",
        "expectations/raw_taxi_fares_events.json", "tests/usecases/test_taxi_fares.py",
        "usecases/taxi_fares/features.py", "usecases/taxi_fares/usecase.yaml"])  # fmt: skip
    spec = load_usecase(scaffolded / "usecases", NAME)
    assert (spec.title, spec.task, spec.serving.route) == ("Taxi fares", "regression", "/taxi_fares/predict")
    assert (
        json.loads((scaffolded / "expectations/raw_taxi_fares_events.json").read_text())["name"]
        == spec.sources.tables["events"].suite
    )


def test_its_dags_pass_the_integrity_checks(scaffolded):
    env = {**os.environ, "PLATFORM_USECASES_DIR": str(scaffolded / "usecases")}
    completed = subprocess.run([sys.executable, "-c", DAGBAG, str(scaffolded / "dags")], capture_output=True,
                               text=True, env=env, cwd=REPO_ROOT, check=True, timeout=300)  # fmt: skip
    bag = json.loads(completed.stdout.strip().splitlines()[-1])
    assert bag["errors"] == {}
    spec = load_usecase(scaffolded / "usecases", NAME)
    assert sorted(bag["dags"]) == sorted(spec.dag_id(kind) for kind in DAG_KINDS)
    for dag in bag["dags"].values():
        assert NAME in dag["tags"] and dag["owner"] == "TODO-team" and spec.as_yaml() in dag["doc"]
        assert dag["untimed"] == []


def test_its_dbt_models_parse_and_its_feast_definitions_register(scaffolded):
    from pipelines.features.store import _repo_contents

    env = {**os.environ, "DBT_PROFILES_DIR": str(scaffolded / "dbt"), "DBT_TARGET_PATH": str(scaffolded / "target"),
           "DBT_LOG_PATH": str(scaffolded / "logs"), "PLATFORM_WAREHOUSE_PATH": str(scaffolded / "w.duckdb"),
           "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}  # fmt: skip
    dbt = str(__import__("pathlib").Path(sys.executable).with_name("dbt"))
    subprocess.run([dbt, "parse"], cwd=scaffolded / "dbt", env=env, check=True, capture_output=True, timeout=300)
    nodes = json.loads((scaffolded / "target" / "manifest.json").read_text())["nodes"]
    assert {"model.flights.taxi_fares_rows", "model.flights.taxi_fares_daily"} <= set(nodes)
    settings = load_settings(data_root=scaffolded / "var", usecases_dir=scaffolded / "usecases")
    services = {s.name for s in _repo_contents(settings).feature_services}
    assert services == {"taxi_fares_v1"}


def test_its_data_tests_fail_until_the_author_fills_it_in(scaffolded):
    completed = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                                str(scaffolded / "tests/usecases/test_taxi_fares.py")], capture_output=True, text=True,
                               cwd=REPO_ROOT, timeout=600)  # fmt: skip
    assert completed.returncode == 1, completed.stdout[-2000:]
    assert "3 failed" in completed.stdout
    assert "fill in the TODOs" in completed.stdout and "package TODO_package is not installed" in completed.stdout


def test_an_existing_or_malformed_name_is_refused_before_anything_is_written(scaffolded, tmp_path):
    before = sorted(scaffolded.rglob("*"))
    with pytest.raises(SettingsError, match="use case 'taxi_fares' exists already"):
        new_usecase(scaffolded, NAME)
    assert sorted(scaffolded.rglob("*")) == before
    with pytest.raises(SettingsError, match="must be 2-40 lowercase letters"):
        new_usecase(tmp_path, "Taxi-Fares")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(SettingsError, match="--source 'ftp' is not a source kind: package_file, database"):
        new_usecase(tmp_path, "taxi_fares", source="ftp")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("source", "to_fill"), [
    ("package_file", "package TODO_package is not installed"),
    ("database", "connection 'taxi_fares_db' is not in Vault"),
    ("object_store", "connection 'taxi_fares_bucket' is not in Vault"),
    ("warehouse", "the warehouse"),
])  # fmt: skip
def test_each_source_kind_scaffolds_a_spec_that_loads_and_a_source_that_names_what_to_fill_in(
    tmp_path, source, to_fill
):
    from pipelines.errors import PlatformError
    from pipelines.ingest.sources import extract_day

    assert main(["new-usecase", NAME, "--source", source, "--root", str(tmp_path)]) == 0
    spec = load_usecase(tmp_path / "usecases", NAME)
    table = spec.sources.tables["events"]
    assert table.kind == source and spec.sources.partitioned == ["events"]
    suite = json.loads((tmp_path / "expectations/raw_taxi_fares_events.json").read_text())
    assert suite["expectations"][0]["kwargs"]["column_set"] == list(table.columns)  # the suite checks the spec's
    settings = load_settings(data_root=tmp_path / "var", usecases_dir=tmp_path / "usecases")
    with pytest.raises(PlatformError, match=to_fill):  # what its data test says until the TODOs are filled in
        extract_day(settings, spec, "events", spec.ingest.first_day)
