"""The audit ledger: one append-only, hash-chained record of every consequential action.

Each record carries the hash of the one before it and its own hash over all its fields
(canonical JSON), so changing, removing, inserting or reordering a record breaks the chain
at that record, and `verify()` names it. Two backends with one behaviour:

- file: JSON lines under the data root; writers serialise on an exclusive file lock.
- postgres: a table whose rows cannot be updated or deleted (a trigger refuses); writers
  serialise on a transaction-scoped advisory lock, and the sequence number is the primary key.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import getpass
import hashlib
import json
import os
import socket
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from pipelines.errors import AuditChainBroken
from pipelines.settings import Settings

GENESIS = "0" * 64
SCHEMA = "platform_audit"
TABLE = f"{SCHEMA}.ledger"
LOCK_ID = 0x6175646974  # pg_advisory_xact_lock key of ledger writers ("audit")


def canonical_json(value) -> bytes:
    """The one serialisation that is hashed and signed: sorted keys, no spaces, UTF-8."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


@dataclass(frozen=True)
class AuditRecord:
    seq: int
    time: str
    actor: str
    action: str
    subject: str
    details: dict
    prev_hash: str
    hash: str

    @staticmethod
    def compute_hash(seq: int, time: str, actor: str, action: str, subject: str, details: dict, prev: str) -> str:
        body = {"seq": seq, "time": time, "actor": actor, "action": action, "subject": subject,
                "details": details, "prev_hash": prev}  # fmt: skip
        return hashlib.sha256(canonical_json(body)).hexdigest()

    @classmethod
    def next(cls, previous: AuditRecord | None, actor: str, action: str, subject: str, details: dict) -> AuditRecord:
        seq = previous.seq + 1 if previous else 1
        prev = previous.hash if previous else GENESIS
        now = dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")
        details = json.loads(canonical_json(details))  # exactly what will be read back
        return cls(seq, now, actor, action, subject, details, prev,
                   cls.compute_hash(seq, now, actor, action, subject, details, prev))  # fmt: skip

    def expected_hash(self) -> str:
        return self.compute_hash(
            self.seq, self.time, self.actor, self.action, self.subject, self.details, self.prev_hash
        )


@dataclass(frozen=True)
class ChainReport:
    records: int
    head: str  # hash of the last record (GENESIS when empty)


class AuditLedger(ABC):
    def __init__(self, actor: str = "") -> None:
        self.actor = actor or f"{getpass.getuser()}@{socket.gethostname()}"

    def append(self, action: str, subject: str, details: dict | None = None, *, actor: str = "") -> AuditRecord:
        """Append one record, chained to the current last one; atomic against concurrent writers."""
        return self._append(actor or self.actor, action, subject, details or {})

    @abstractmethod
    def _append(self, actor: str, action: str, subject: str, details: dict) -> AuditRecord: ...

    @abstractmethod
    def records(self) -> Iterator[AuditRecord]:
        """All records in ledger order. May raise AuditChainBroken for an unreadable record."""

    def verify(self) -> ChainReport:
        """Check every record; raise AuditChainBroken naming the first record that is wrong."""
        previous: AuditRecord | None = None
        count = 0
        for record in self.records():
            expected_seq = previous.seq + 1 if previous else 1
            if record.seq > expected_seq:
                missing = f"{expected_seq}" if record.seq == expected_seq + 1 else f"{expected_seq}..{record.seq - 1}"
                raise AuditChainBroken(f"{self}: record {missing} is missing (record {record.seq} follows "
                                       f"{previous.seq if previous else 'the start'})")  # fmt: skip
            if record.seq < expected_seq:
                raise AuditChainBroken(f"{self}: record {record.seq} appears again after record {previous.seq}")
            if record.hash != record.expected_hash():
                raise AuditChainBroken(f"{self}: record {record.seq} was altered (its hash does not match its fields)")
            if record.prev_hash != (previous.hash if previous else GENESIS):
                raise AuditChainBroken(
                    f"{self}: record {record.seq} does not chain to record {expected_seq - 1} "
                    "(a record before it was altered or replaced)"
                )
            previous, count = record, count + 1
        return ChainReport(count, previous.hash if previous else GENESIS)


class FileLedger(AuditLedger):
    """JSON lines; every append holds an exclusive lock from reading the head to fsync."""

    def __init__(self, path: Path, actor: str = "") -> None:
        super().__init__(actor)
        self.path = path

    def __str__(self) -> str:
        return str(self.path)

    def _append(self, actor: str, action: str, subject: str, details: dict) -> AuditRecord:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_name(self.path.name + ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            with open(self.path, "a+b") as ledger:
                record = AuditRecord.next(self._last(ledger), actor, action, subject, details)
                ledger.write(canonical_json(asdict(record)) + b"\n")
                ledger.flush()
                os.fsync(ledger.fileno())
        return record

    def _last(self, ledger) -> AuditRecord | None:
        size = ledger.seek(0, os.SEEK_END)
        if size == 0:
            return None
        block = 4096
        while True:  # read back from the end until the last line is whole
            start = max(size - block, 0)
            ledger.seek(start)
            lines = ledger.read(size - start).rstrip(b"\n").split(b"\n")
            if len(lines) > 1 or start == 0:
                return self._parse(lines[-1], "the last line")
            block *= 4

    def _parse(self, line: bytes, where: str) -> AuditRecord:
        try:
            return AuditRecord(**json.loads(line))
        except (ValueError, TypeError) as exc:
            raise AuditChainBroken(f"{self}: {where} is not a ledger record ({exc})") from None

    def records(self) -> Iterator[AuditRecord]:
        if not self.path.exists():
            return
        with open(self.path, "rb") as ledger:
            for number, line in enumerate(ledger, start=1):
                yield self._parse(line, f"line {number}")


class PostgresLedger(AuditLedger):
    """A table in PostgreSQL; rows are never updated or deleted (enforced by a trigger)."""

    def __init__(self, dsn: str, actor: str = "") -> None:
        super().__init__(actor)
        self.dsn = dsn
        self._ensure_table()

    def __str__(self) -> str:
        return f"PostgreSQL table {TABLE}"

    def _connect(self):
        import psycopg2

        return psycopg2.connect(self.dsn)

    def _ensure_table(self) -> None:
        with self._connect() as con, con.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_ID,))
            cursor.execute("SELECT to_regclass(%s)", (TABLE,))
            if cursor.fetchone()[0] is not None:
                return
            cursor.execute(f"""
                CREATE SCHEMA IF NOT EXISTS {SCHEMA};
                CREATE TABLE IF NOT EXISTS {TABLE} (
                    seq bigint PRIMARY KEY, time text NOT NULL, actor text NOT NULL, action text NOT NULL,
                    subject text NOT NULL, details text NOT NULL, prev_hash char(64) NOT NULL,
                    hash char(64) NOT NULL UNIQUE);
                CREATE OR REPLACE FUNCTION {SCHEMA}.refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
                    BEGIN RAISE EXCEPTION 'the audit ledger is append-only'; END $$;
                CREATE TRIGGER append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON {TABLE}
                    FOR EACH STATEMENT EXECUTE FUNCTION {SCHEMA}.refuse_change();
            """)

    def _append(self, actor: str, action: str, subject: str, details: dict) -> AuditRecord:
        con = self._connect()
        try:
            with con, con.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_ID,))
                cursor.execute(f"SELECT {self._columns} FROM {TABLE} ORDER BY seq DESC LIMIT 1")  # nosec B608 # identifiers are module constants; values are bound
                row = cursor.fetchone()
                record = AuditRecord.next(self._record(row) if row else None, actor, action, subject, details)
                cursor.execute(
                    f"INSERT INTO {TABLE} ({self._columns}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",  # nosec B608 # identifiers are module constants; values are bound
                    (record.seq, record.time, record.actor, record.action, record.subject,
                     canonical_json(record.details).decode(), record.prev_hash, record.hash),
                )  # fmt: skip
        finally:
            con.close()
        return record

    _columns = "seq, time, actor, action, subject, details, prev_hash, hash"

    @staticmethod
    def _record(row) -> AuditRecord:
        seq, time, actor, action, subject, details, prev_hash, hash_ = row
        return AuditRecord(seq, time, actor, action, subject, json.loads(details), prev_hash, hash_)

    def records(self) -> Iterator[AuditRecord]:
        con = self._connect()
        try:
            with con.cursor(name="ledger_scan") as cursor:
                cursor.execute(f"SELECT {self._columns} FROM {TABLE} ORDER BY seq")  # nosec B608 # identifiers are module constants; values are bound
                for row in cursor:
                    yield self._record(row)
        finally:
            con.close()


def audit_ledger(settings: Settings) -> AuditLedger:
    """The configured ledger (PLATFORM_AUDIT_TARGET): a file under the data root, or PostgreSQL."""
    if settings.audit_target == "postgres":
        from pipelines.security.secrets import postgres_connection

        return PostgresLedger(postgres_connection(settings).dsn(), settings.actor)
    return FileLedger(settings.audit_dir / "ledger.jsonl", settings.actor)
