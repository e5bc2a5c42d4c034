"""The audit ledger on both backends: a chain that verifies, concurrent writers that never fork it,
and verify() naming the first altered, missing or replaced record."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.errors import AuditChainBroken
from pipelines.security.audit import GENESIS, TABLE, FileLedger, PostgresLedger
from tests.conftest import fresh_postgres_database

WRITERS, APPENDS = 4, 40


@pytest.fixture(scope="module")
def postgres_dsn():
    with fresh_postgres_database("audit_test") as dsn:
        yield dsn


@pytest.fixture(params=["file", "postgres"])
def make_ledger(request, tmp_path):
    """A factory of ledgers on one fresh backend (each process makes its own)."""
    if request.param == "file":
        path = tmp_path / "ledger.jsonl"
        return lambda actor="test": FileLedger(path, actor)
    dsn = request.getfixturevalue("postgres_dsn")
    schema_reset(dsn)
    return lambda actor="test": PostgresLedger(dsn, actor)


def schema_reset(dsn: str) -> None:
    import psycopg2

    with psycopg2.connect(dsn) as con, con.cursor() as cursor:
        cursor.execute("DROP SCHEMA IF EXISTS platform_audit CASCADE")


def _writer(factory_args: tuple[str, str], worker: int) -> None:
    kind, where = factory_args
    ledger = FileLedger(Path(where), f"w{worker}") if kind == "file" else PostgresLedger(where, f"w{worker}")
    for n in range(APPENDS):
        ledger.append("test.write", f"worker-{worker}", {"n": n})


def test_records_chain_and_verify(make_ledger):
    ledger = make_ledger()
    first = ledger.append("model.promote", "flight_delay/3", {"from": "challenger", "metrics": {"auc": 0.71}})
    second = ledger.append("gate.decision", "flight_delay/4", {"passed": False, "reasons": ["auc below 0.70"]})
    assert (first.seq, first.prev_hash) == (1, GENESIS)
    assert (second.seq, second.prev_hash) == (2, first.hash)
    assert [r.details for r in ledger.records()] == [first.details, second.details]
    report = ledger.verify()
    assert (report.records, report.head) == (2, second.hash)


def test_concurrent_writers_never_fork_the_chain(make_ledger, tmp_path):
    ledger = make_ledger()
    where = ("file", str(ledger.path)) if isinstance(ledger, FileLedger) else ("postgres", ledger.dsn)
    context = multiprocessing.get_context("spawn")
    with context.Pool(WRITERS) as pool:
        pool.starmap(_writer, [(where, worker) for worker in range(WRITERS)])
    records = list(ledger.records())
    assert [r.seq for r in records] == list(range(1, WRITERS * APPENDS + 1))
    assert len({r.prev_hash for r in records}) == len(records)  # no two records share a parent
    for worker in range(WRITERS):  # every writer's records are all there, in its own order
        assert [r.details["n"] for r in records if r.subject == f"worker-{worker}"] == list(range(APPENDS))
    assert ledger.verify().records == WRITERS * APPENDS


def _file_lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def _write_lines(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


@pytest.fixture
def five(tmp_path):
    ledger = FileLedger(tmp_path / "ledger.jsonl")
    for n in range(5):
        ledger.append("test.write", f"item-{n}", {"n": n})
    return ledger


def test_an_altered_record_is_named(five):
    records = _file_lines(five.path)
    records[2]["details"]["n"] = 99
    _write_lines(five.path, records)
    with pytest.raises(AuditChainBroken, match="record 3 was altered"):
        five.verify()


def test_a_removed_record_is_named(five):
    records = _file_lines(five.path)
    del records[3]
    _write_lines(five.path, records)
    with pytest.raises(AuditChainBroken, match="record 4 is missing"):
        five.verify()


def test_a_rewritten_record_with_a_recomputed_hash_breaks_the_next_link(five):
    from pipelines.security.audit import AuditRecord

    records = _file_lines(five.path)
    forged = {**records[1], "details": {"n": 42}}
    forged["hash"] = AuditRecord(**{**forged, "hash": ""}).expected_hash()
    records[1] = forged
    _write_lines(five.path, records)
    with pytest.raises(AuditChainBroken, match="record 3 does not chain to record 2"):
        five.verify()


def test_a_torn_last_line_is_reported_not_skipped(five):
    with five.path.open("a") as handle:
        handle.write('{"seq": 6, "time"')
    with pytest.raises(AuditChainBroken, match="line 6 is not a ledger record"):
        five.verify()


def test_postgres_ledger_refuses_updates_and_deletes(postgres_dsn):
    import psycopg2

    schema_reset(postgres_dsn)
    ledger = PostgresLedger(postgres_dsn)
    ledger.append("test.write", "x", {"n": 1})
    for statement in (f"UPDATE {TABLE} SET details = '{{}}'", f"DELETE FROM {TABLE}", f"TRUNCATE {TABLE}"):
        with psycopg2.connect(postgres_dsn) as con, con.cursor() as cursor:
            with pytest.raises(psycopg2.Error, match="append-only"):
                cursor.execute(statement)
    assert ledger.verify().records == 1


def test_platform_audit_verify_exits_nonzero_naming_the_record(five, tmp_path):
    root = tmp_path / "var"
    target = root / "audit" / "ledger.jsonl"
    target.parent.mkdir(parents=True)
    target.write_bytes(five.path.read_bytes())
    platform = [sys.executable, "-m", "pipelines.cli", "audit-verify"]
    env = {**os.environ, "PLATFORM_DATA_ROOT": str(root)}
    ok = subprocess.run(platform, env=env, capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert "5 records, chain intact" in ok.stdout
    records = _file_lines(target)
    records[0]["actor"] = "someone-else"
    _write_lines(target, records)
    broken = subprocess.run(platform, env=env, capture_output=True, text=True, timeout=60)
    assert broken.returncode == 1
    assert "record 1 was altered" in broken.stderr
