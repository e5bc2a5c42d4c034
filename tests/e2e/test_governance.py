"""Governance on real stores, a real OpenBao and a real model service: a data subject erased everywhere the
platform keeps it (searched for afterwards in clear and hashed, in every store), the second erasure changing
nothing; an objecting subject answered `human_review`, never scored; the compliance evidence pack verified, and
saying so when the ledger or a manifest is tampered with; retention deleting what expired but what a live model
needs."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import shutil
import time

import duckdb
import httpx
import pandas as pd
import pyarrow.parquet as pq
import pytest
from pydantic import SecretStr

from pipelines.governance.subjects import erase, object_to_automated_decisions, subject_hash
from pipelines.ingest import land_day, partition_path
from pipelines.ingest.landing import manifest_path
from pipelines.orchestration.training import REFERENCE_FILE
from pipelines.registry.registry import Registry
from pipelines.security.audit import audit_ledger
from pipelines.security.store import artifact_store
from pipelines.security.vault import KV_MOUNT, issue_credentials
from pipelines.usecases.spec import resolve_usecase
from serving.auth import create_key
from serving.local import wait_ready
from serving.predictions import ParquetLog
from tests.conftest import make_settings
from tests.e2e.conftest import SCREENSHOTS, auth, chromium_page, flight, serve, train_champion_and_challenger

pytestmark = pytest.mark.e2e
MODEL = "flight_delay"


def _as(settings, openbao, role: str):
    """The settings of a process logged in as an AppRole role (the CLI's erase and objection run as privacy)."""
    role_id, secret_id = issue_credentials(openbao.root, role)
    return settings.model_copy(update={"vault_role_id": role_id, "vault_secret_id": SecretStr(secret_id)})


@pytest.fixture(scope="module")
def governed(built, openbao, tmp_path_factory):
    """A platform of its own: the built platform's data (not its ledger) and a champion and challenger trained
    here, so that this ledger alone explains the Vault's decrypts of its artifacts' data keys (a copy of the shared
    trained store would be decrypted by other modules, rightly a problem for this ledger). A subject who flew on
    the built days, and predictions the service logged for some of its flights and others'. Afterwards the Vault,
    shared by the session, forgets the subject's erasure and objection."""
    root = tmp_path_factory.mktemp("governed")
    source = built.settings.data_root
    shutil.copytree(source, root / "var", ignore=lambda d, _: ["audit", "training"] if d == str(source) else [])
    versions = train_champion_and_challenger(root / "var", root / "store", built.days)
    settings = make_settings(root / "var", artifact_store_uri=(root / "store").as_uri())
    usecase = resolve_usecase(settings, MODEL)
    flights = pq.read_table(partition_path(settings, "flights", built.days[1])).to_pandas()
    tailnum = flights["tailnum"].value_counts().index[0]  # the busiest plane of the day
    ids = [f"{built.days[1]}-{r.carrier}{r.flight}-{r.origin}" for r in flights.itertuples()]
    mine = [i for i, t in zip(ids, flights["tailnum"], strict=True) if t == tailnum]
    ParquetLog(settings, usecase).write(
        "before-erasure",
        [{"flight_id": i, "scheduled_departure": pd.Timestamp(built.days[1]), "probability": 0.3, "model_version": 1,
          "variant": "champion", "decision": "model", "error": ""} for i in [*mine, *ids[:5]]],
    )  # fmt: skip
    yield settings, usecase, tailnum, mine, versions
    for register in ("erased", "objections"):
        openbao.root.client.secrets.kv.v2.delete_metadata_and_all_versions(
            f"governance/{MODEL}/{register}", mount_point=KV_MOUNT
        )


def _digests(root) -> dict[str, str]:
    """Every data file under the data root (not the ledger, the erasure's own state, Vault's or Airflow's)."""
    records = {"audit", "governance", "vault", "airflow"}
    files = [p for p in sorted(root.rglob("*")) if p.is_file() and not records & set(p.relative_to(root).parts)]
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def _found_in_warehouse(settings, values: list[str]) -> list[str]:
    """Every table and column of the warehouse holding one of `values` (the views, staging, derive from them: they
    hash with the PII salt's function, which only dbt's sessions register)."""
    found = []
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        columns = con.execute("SELECT c.table_schema, c.table_name, c.column_name FROM information_schema.columns c "
                              "JOIN information_schema.tables t USING (table_schema, table_name) "
                              "WHERE c.data_type = 'VARCHAR' AND t.table_type = 'BASE TABLE'").fetchall()  # fmt: skip
        for schema, table, column in columns:
            hits = con.execute(f'SELECT count(*) FROM "{schema}"."{table}" WHERE "{column}" IN ?',  # nosec B608 # test: names from the catalog
                               [values]).fetchone()[0]  # fmt: skip
            if hits:
                found.append(f"{schema}.{table}.{column}: {hits}")
    return found


def _flights_of(settings, tailnum: str, days: list[dt.date]) -> list[str]:
    """The ids of the plane's flights on the landed days."""
    ids = []
    for day in days:
        flights = pq.read_table(partition_path(settings, "flights", day)).to_pandas()
        ids += [f"{day}-{r.carrier}{r.flight}-{r.origin}" for r in flights[flights["tailnum"] == tailnum].itertuples()]
    return ids


def test_an_erased_subject_is_found_nowhere_in_clear_or_hashed(governed, openbao, built):
    settings, usecase, tailnum, mine, versions = governed
    privacy = _as(settings, openbao, "privacy")
    hashed = subject_hash(privacy, tailnum)
    assert _found_in_warehouse(settings, [tailnum, hashed]), "the subject is there before"
    flown = _flights_of(settings, tailnum, built.days)
    logged = int(ParquetLog(settings, usecase).read()["flight_id"].isin(flown).sum())  # the fixture's, and others'
    assert set(mine) <= set(flown) and logged >= len(mine)
    erasure = erase(privacy, usecase, tailnum)
    assert erasure.changed and erasure.raw_partitions and erasure.online_rows > 0
    assert erasure.prediction_rows == logged and sorted(erasure.affected_versions) == sorted(versions.values())
    # raw: every landed file, every string column
    for path in settings.raw_dir.rglob("*.parquet"):
        frame = pq.read_table(path).to_pandas()
        assert not frame.isin([tailnum, hashed]).any().any(), path
    table, day = erasure.raw_partitions[0].split(" ")
    amended = json.loads(manifest_path(partition_path(settings, table, dt.date.fromisoformat(day))).read_text())
    assert amended["source"]["amendments"][-1]["erasure"] == hashed
    # the warehouse's every layer, the offline export, the online store
    assert _found_in_warehouse(settings, [tailnum, hashed]) == []
    for path in settings.feature_export_dir.rglob("*.parquet"):
        assert not pq.read_table(path).to_pandas().isin([tailnum, hashed]).any().any(), path
    import sqlite3

    with sqlite3.connect(settings.feast_dir / "online_store.db") as con:
        for (table,) in con.execute("SELECT name FROM sqlite_master WHERE type='table'").fetchall():
            hits = con.execute(f'SELECT count(*) FROM "{table}" WHERE instr(entity_key, ?) > 0',  # nosec B608 # test
                               (hashed.encode(),)).fetchone()[0]  # fmt: skip
            assert hits == 0, table
    # the prediction log: none of its items' answers
    assert not ParquetLog(settings, usecase).read()["flight_id"].isin(flown).any()
    # the registered reference samples: sealed anew without its items, signed again with the erasure listed
    ledger = audit_ledger(settings)
    registry = Registry(artifact_store(settings, ledger), openbao.role("evaluation"), ledger)
    for version in registry.versions(MODEL):
        manifest, files = registry.load_files(MODEL, version, [REFERENCE_FILE])
        sample = pd.read_parquet(io.BytesIO(files[REFERENCE_FILE]))
        assert not sample["flight_id"].isin(mine).any() and not sample.isin([tailnum, hashed]).any().any()
    assert [e["subject"] for e in registry.erasures(MODEL)] == [hashed]
    # the ledger names the subject by its hash only
    text = "\n".join(json.dumps([r.actor, r.subject, r.details]) for r in ledger.records())
    assert tailnum not in text and f'"subject": "{hashed}"' in text


def test_a_second_erasure_changes_nothing_and_the_subject_never_lands_again(governed, openbao, built):
    settings, usecase, tailnum, _, _ = governed
    privacy = _as(settings, openbao, "privacy")
    erase(privacy, usecase, tailnum)  # idempotent whether or not the test above ran first
    before = _digests(settings.data_root)
    again = erase(privacy, usecase, tailnum)
    assert not again.changed and _digests(settings.data_root) == before
    land_day(settings, usecase, built.days[1])  # the source still holds it: landing leaves it out
    assert tailnum not in set(pq.read_table(partition_path(settings, "flights", built.days[1]))["tailnum"].to_pylist())


def test_an_objecting_subject_is_answered_human_review_and_never_scored(governed, openbao, tmp_path):
    settings, usecase, tailnum, _, _ = governed
    key = create_key(openbao.root, "objection-test", ["predict"])
    with serve(settings.model_copy(update={"api_key_max_age_s": 1.0}), openbao, tmp_path) as base:
        wait_ready(base)
        items = [flight(1, tailnum=tailnum, flight_id="mine-1"), flight(2, flight_id="theirs-2")]
        before = httpx.post(f"{base}/predict", json={"flights": items}, headers=auth(key), timeout=60).json()
        assert [p["decision"] for p in before["predictions"]] == ["model", "model"]
        object_to_automated_decisions(_as(settings, openbao, "privacy"), usecase, tailnum)
        time.sleep(1.5)  # the service rereads the objections within PLATFORM_API_KEY_MAX_AGE_S
        answer = httpx.post(f"{base}/predict", json={"flights": items}, headers=auth(key), timeout=60)
        assert answer.status_code == 200, answer.text
        reviewed, scored = answer.json()["predictions"]
        assert reviewed == {"flight_id": "mine-1", "probability": None, "late": None, "model_version": None,
                            "variant": "human_review", "decision": "human_review"}  # fmt: skip
        assert scored["decision"] == "model" and 0 <= scored["probability"] <= 1
    logged = ParquetLog(settings, usecase).read()
    row = logged[logged["request_id"] == answer.json()["request_id"]].set_index("flight_id")
    assert row.loc["mine-1", "variant"] == "human_review" and row.loc["mine-1", "decision"] == "human_review"
    assert pd.isna(row.loc["mine-1", "probability"]) and pd.isna(row.loc["mine-1", "model_version"]), "not scored"


@pytest.fixture
def private(governed, tmp_path):
    """A copy of the governed platform a test may break (tamper with its ledger or manifests)."""
    settings, usecase, *_ = governed
    shutil.copytree(settings.data_root, tmp_path / "var")
    shutil.copytree(settings.artifact_uri.removeprefix("file://"), tmp_path / "store")
    return make_settings(tmp_path / "var", artifact_store_uri=(tmp_path / "store").as_uri()), usecase


def test_the_compliance_pack_verifies_itself_and_flags_what_does_not_hold(private, governed, openbao, tmp_path):
    from pipelines.governance.evidence import write_report
    from pipelines.security.artifacts import SEALED_PREFIX, Envelope

    settings, _ = private
    versions = governed[4]
    operator = _as(settings, openbao, "operator")
    doc = write_report(operator, MODEL, tmp_path / "pack", vault_audit=openbao.server.audit_file)
    assert doc["integrity"]["ok"], doc["integrity"]["problems"]
    champion = doc["versions"][str(versions["champion"])]
    assert champion["lineage"]["suites_passed"] and all(
        len(p["sha256"]) == 64 for p in champion["lineage"]["raw_partitions"]
    )
    decrypts = champion["decrypts"]
    roles = {(d["details"]["name"].rpartition("/")[2], d["vault"]["role"]) for d in decrypts}  # each one matched
    # the model scored by evaluation and serving; the reference sample re-sealed by the privacy officer's erasure,
    # and read back by the erasure test
    assert (
        {("model.onnx", "evaluation"), ("model.onnx", "serving")}
        <= roles
        <= {
            ("model.onnx", "evaluation"),
            ("model.onnx", "serving"),
            ("reference.parquet", "privacy"),
            ("reference.parquet", "evaluation"),
        }
    )
    assert any(r["action"] == "gate.decision" for r in champion["decisions"])
    page = (tmp_path / "pack" / "compliance.html").read_text()
    assert "VERIFIED" in page and "UAE PDPL" in page and "ISO/IEC 42001 A.6.2.8" in page and "Art. 12" in page
    with chromium_page(height=1200) as browser:  # as the auditor opens it
        browser.goto((tmp_path / "pack" / "compliance.html").as_uri())
        browser.screenshot(path=str(SCREENSHOTS / "compliance_report.png"), full_page=False)
    bom = json.loads((tmp_path / "pack" / f"mlbom-{MODEL}-v{versions['champion']}.cdx.json").read_text())
    model = bom["metadata"]["component"]
    assert bom["specVersion"] == "1.6" and model["type"] == "machine-learning-model" and model["modelCard"]
    assert {h["content"] for h in model["hashes"]} == {f["sha256"] for f in champion["lineage"]["files"].values()}

    # A decrypt of this store's artifact straight from Vault, past the platform's code and its ledger.
    store = artifact_store(settings)
    sealed = store.keys(SEALED_PREFIX)[0]
    wrapped = Envelope.from_bytes(store.get(sealed)).header["wrapped_key"]
    openbao.role("evaluation").client.secrets.transit.decrypt_data("artifacts", wrapped, mount_point="transit")
    audit_ledger(settings).append("test.marker", MODEL, {})  # the ledger goes on after it
    bypassed = write_report(operator, MODEL, tmp_path / "bypassed", vault_audit=openbao.server.audit_file)
    assert not bypassed["integrity"]["ok"]
    assert any("by role evaluation has no ledger record" in p for p in bypassed["integrity"]["problems"])

    # A record of the ledger altered, and a manifest altered: the pack says so first.
    ledger_file = settings.audit_dir / "ledger.jsonl"
    lines = ledger_file.read_text().splitlines()
    lines[3] = lines[3].replace('"actor":"', '"actor":"x', 1)
    ledger_file.write_text("\n".join(lines) + "\n")
    manifest = next(k for k in store.keys("registry") if k.endswith("manifest.json"))
    body = json.loads(store.get(manifest))
    body["manifest"]["metrics"]["holdout"]["roc_auc"] = 0.99
    store.put(manifest, json.dumps(body).encode(), overwrite=True)
    tampered = write_report(operator, MODEL, tmp_path / "tampered", vault_audit=openbao.server.audit_file)
    problems = " ".join(tampered["integrity"]["problems"])
    assert "record 4 was altered" in problems and "its manifest does not verify" in problems, problems
    assert "INTEGRITY FAILURE" in (tmp_path / "tampered" / "compliance.html").read_text()


def test_retention_deletes_what_expired_but_what_a_live_model_needs(private, governed, built):
    from pipelines.governance.retention import housekeep

    settings, _ = private
    versions = governed[4]
    for table in ("flights", "weather"):  # a day landed long ago, in no live model's lineage
        shutil.copytree(
            settings.raw_dir / table / f"date={built.days[0]}", settings.raw_dir / table / "date=2012-12-20"
        )
    rule = {"retention.raw_days": 1, "retention.registry_versions": 1}
    settings = make_settings(settings.data_root, artifact_store_uri=settings.artifact_store_uri,
                             usecase_overrides={MODEL: rule})  # fmt: skip
    day = built.days[-1] + dt.timedelta(days=2)
    done = housekeep(settings, resolve_usecase(settings, MODEL), day)
    assert {"raw flights 2012-12-20", "raw weather 2012-12-20"} <= set(done.deleted)
    assert not (settings.raw_dir / "flights" / "date=2012-12-20").exists()
    for d in built.days:  # older than the rule keeps, but the live champion and challenger were trained on them
        assert (settings.raw_dir / "flights" / f"date={d}").exists()
        assert any(k.startswith(f"raw flights {d}: in the lineage of the live") for k in done.kept), done.kept
    assert f"{MODEL} v{versions['champion']}: the live champion" in done.kept  # beyond the newest 1, but live
    actions = [r.action for r in audit_ledger(settings).records()]
    assert actions.count("retention.deleted") == len(done.deleted) and actions.count("retention.kept") == len(done.kept)
