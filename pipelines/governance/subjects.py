"""Data subjects' rights (UAE PDPL, Federal Decree-Law 45/2021): erasure (Art. 15) and objection to automated
decisions (Art. 18), for the person the spec's `subject` names (flights: an aircraft's registrant, by its tail
number).

A subject is known only by its salted hash (the PII salt in Vault): the ledger, the registers and the registry hold
that, never the value. Two registers in Vault (KV `governance/<use case>/erased` and `.../objections`) carry the
requests to where they act: landing pseudonymises an erased subject in every partition it lands from then on,
and the model service answers an objecting subject's items `human_review`, unscored.

`erase` removes or irreversibly pseudonymises the subject everywhere the platform keeps it, in an order that a
re-run completes: the register first (nothing lands it again), then the raw partitions (its identifier nulled in
day partitions, its rows dropped from reference tables), every warehouse table (raw rows, and the hashed column
of every built table), the Feast offline export and online store, the prediction log's rows of its items, and the
registered reference samples (sealed anew, their manifests signed again with the erasure listed). It lists, and
marks in the registry, the model versions whose training data held the subject; retraining sees it no more. A
second erasure finds nothing left and changes nothing.
"""

from __future__ import annotations

import datetime as dt
import io
import json
from dataclasses import asdict, dataclass, field

from pipelines.errors import PlatformError
from pipelines.settings import Settings
from pipelines.usecases.spec import UseCase

REGISTERS = ("erased", "objections")


@dataclass
class Erasure:
    usecase: str
    subject: str  # the salted hash
    raw_partitions: list[str] = field(default_factory=list)  # <table> <day or reference> rewritten
    warehouse_rows: dict[str, int] = field(default_factory=dict)  # <schema>.<table>: rows changed
    online_rows: int = 0
    prediction_rows: int = 0
    reference_samples: list[int] = field(default_factory=list)  # versions whose sample was sealed anew
    affected_versions: list[int] = field(default_factory=list)  # versions trained on data holding the subject

    @property
    def changed(self) -> bool:
        return bool(self.raw_partitions or any(self.warehouse_rows.values()) or self.online_rows
                    or self.prediction_rows or self.reference_samples)  # fmt: skip

    def render(self) -> str:
        if not self.changed:
            return f"{self.usecase}: subject {self.subject[:12]}… holds nothing more to erase (erased before)"
        return (f"{self.usecase}: subject {self.subject[:12]}… erased: {len(self.raw_partitions)} raw partitions, "
                f"{sum(self.warehouse_rows.values())} warehouse rows, {self.online_rows} online rows, "
                f"{self.prediction_rows} logged predictions, reference samples of "
                f"{self.reference_samples or 'no'} version(s); trained on it: versions "
                f"{self.affected_versions or 'none'} (marked in the registry)")  # fmt: skip


def subject_hash(settings: Settings, value: str) -> str:
    """The subject's identifier as the platform keeps it: sha256 of the PII salt and the value."""
    from pipelines.features.pii import hash_pii
    from pipelines.security.secrets import pii_salt

    if not value or not value.strip():
        raise PlatformError("a data subject is named by a value (e.g. --subject N14228); got nothing")
    return hash_pii(value.strip(), pii_salt(settings))


def registered(settings: Settings, usecase: str, register: str) -> set[str]:
    """The hashes in a register (`erased` or `objections`) of the use case."""
    from pipelines.security.vault import Vault

    data = Vault.from_settings(settings).read_secret(f"governance/{usecase}/{register}") or {}
    return set(data.get("hashes", []))


def _enter(settings: Settings, usecase: str, register: str, subject: str, present: bool) -> bool:
    """Add (or remove) a hash in a register; whether it changed."""
    from pipelines.security.vault import Vault

    if register not in REGISTERS:
        raise ValueError(register)
    hashes = registered(settings, usecase, register)
    if (subject in hashes) == present:
        return False
    wanted = hashes | {subject} if present else hashes - {subject}
    Vault.from_settings(settings).write_secret(f"governance/{usecase}/{register}", {"hashes": sorted(wanted)})
    return True


def pseudonymise(settings: Settings, usecase: UseCase, table: str, rows):
    """`rows` (Arrow) of a table being landed without the erased subjects: their identifier nulled in a day
    partition, their rows dropped from a reference table."""
    import pyarrow as pa
    import pyarrow.compute as pc

    subject = usecase.subject
    if subject is None or table not in subject.columns or rows.num_rows == 0:
        return rows
    erased = registered(settings, usecase.name, "erased")
    if not erased:
        return rows
    from pipelines.features.pii import hash_pii
    from pipelines.security.secrets import pii_salt

    salt, column = pii_salt(settings), subject.columns[table]
    hit = pa.array([v is not None and hash_pii(v, salt) in erased for v in rows[column].to_pylist()])
    if not pc.any(hit).as_py():
        return rows
    if not usecase.sources.tables[table].day_partitioned:
        return rows.filter(pc.invert(hit))
    kept = pc.if_else(hit, pa.scalar(None, rows[column].type), rows[column])
    return rows.set_column(rows.schema.get_field_index(column), column, kept)


def object_to_automated_decisions(settings: Settings, usecase: UseCase, value: str, withdraw: bool = False) -> str:
    """Enter (or withdraw) the subject's objection: the service answers its items `human_review`; the hash."""
    from pipelines.security.audit import audit_ledger

    _require_subject(usecase)
    subject = subject_hash(settings, value)
    changed = _enter(settings, usecase.name, "objections", subject, present=not withdraw)
    action = "subject.objection_withdrawn" if withdraw else "subject.objected"
    audit_ledger(settings).append(action, f"{usecase.name}/subject", {"subject": subject, "changed": changed})
    return subject


def erase(settings: Settings, usecase: UseCase, value: str) -> Erasure:
    """Erase the subject `value` everywhere the platform keeps it (see the module); idempotent, audited."""
    from pipelines.security.audit import audit_ledger

    _require_subject(usecase)
    subject = subject_hash(settings, value.strip())
    value = value.strip()
    _enter(settings, usecase.name, "erased", subject, present=True)
    state = settings.data_root / "governance" / "erasures" / f"{usecase.name}-{subject}.json"
    found = json.loads(state.read_text()) if state.exists() else {"entities": [], "partitions": []}
    entities = sorted(set(found["entities"]) | set(_entities(settings, usecase, subject)))
    erasure = Erasure(usecase.name, subject)
    erasure.raw_partitions = _erase_raw(settings, usecase, value, subject)
    state.parent.mkdir(parents=True, exist_ok=True)
    partitions = sorted(set(found["partitions"]) | set(erasure.raw_partitions))
    state.write_text(json.dumps({"entities": entities, "partitions": partitions}))
    erasure.warehouse_rows = _erase_warehouse(settings, usecase, value, subject)
    if settings.feast_env == "local":
        from pipelines.features.store import export_marts

        export_marts(settings, usecase)
    erasure.online_rows = _erase_online(settings, usecase, subject)
    erasure.prediction_rows = _erase_predictions(settings, usecase, entities)
    erasure.reference_samples = _erase_reference_samples(settings, usecase, entities, subject)
    erasure.affected_versions = _mark_versions(settings, usecase, subject, partitions)
    audit_ledger(settings).append("subject.erased", f"{usecase.name}/subject", {
        k: v for k, v in asdict(erasure).items() if k != "usecase"})  # fmt: skip
    return erasure


def _require_subject(usecase: UseCase) -> None:
    if usecase.subject is None:
        raise PlatformError(f"use case {usecase.name} names no data subject (its spec's `subject` section)")


def _entities(settings: Settings, usecase: UseCase, subject: str) -> list[str]:
    """The entity ids (predictions) of the subject's rows, from the entity mart's hashed column, while it has it."""
    from pipelines.features.store import query_warehouse
    from pipelines.features.transform import MARTS_SCHEMA

    f = usecase.features
    columns = set(_columns(settings).get((MARTS_SCHEMA, f.entity_mart), []))
    derived = [c for c in usecase.subject.derived if c in columns]
    if not derived:  # no hashed column in the entity mart: no entity to find
        return []
    where = " OR ".join(f"{c} = '{subject}'" for c in derived)
    frame = query_warehouse(settings, f"SELECT DISTINCT {f.entity_id} AS id FROM {MARTS_SCHEMA}.{f.entity_mart} "
                                      f"WHERE {where}")  # nosec B608 # identifiers from the spec; the hash is hex  # fmt: skip
    return [str(i) for i in frame["id"]]


def _columns(settings: Settings) -> dict[tuple[str, str], list[str]]:
    """Every base table of the warehouse and its columns: {(schema, table): [column, ...]}."""
    from pipelines.features.store import query_warehouse

    if settings.warehouse_target == "duckdb" and not settings.warehouse_path.exists():
        return {}
    frame = query_warehouse(settings, "SELECT c.table_schema AS s, c.table_name AS t, c.column_name AS c "
                                      "FROM information_schema.columns c JOIN information_schema.tables t "
                                      "ON t.table_schema = c.table_schema AND t.table_name = c.table_name "
                                      "WHERE t.table_type = 'BASE TABLE'")  # fmt: skip
    out: dict[tuple[str, str], list[str]] = {}
    for s, t, c in frame.itertuples(index=False):
        out.setdefault((s, t), []).append(c)
    return out


def _erase_raw(settings: Settings, usecase: UseCase, value: str, subject: str) -> list[str]:
    """Rewrite every landed file holding the subject: its identifier nulled in a day partition, its rows dropped
    from a reference snapshot; each manifest lists the amendment. Returns `<table> <day>` of each."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from pipelines.ingest.landing import amend, reference_path

    rewritten = []
    for table, column in usecase.subject.columns.items():
        partitioned = usecase.sources.tables[table].day_partitioned
        paths = sorted((settings.raw_dir / table).glob("date=*/part.parquet")) if partitioned else \
            [p for p in [reference_path(settings, table)] if p.exists()]  # fmt: skip
        for path in paths:
            data = pq.read_table(path)
            hit = pc.fill_null(pc.equal(data[column], pa.scalar(value)), False)
            if not pc.any(hit).as_py():
                continue
            if partitioned:
                data = data.set_column(data.schema.get_field_index(column), column,
                                       pc.if_else(hit, pa.scalar(None, data[column].type), data[column]))  # fmt: skip
            else:
                data = data.filter(pc.invert(hit))
            amend(settings, path, data, {"erasure": subject, "at": _now(), "rows": pc.sum(hit).as_py()})
            rewritten.append(f"{table} {path.parent.name.removeprefix('date=') if partitioned else 'reference'}")
    return rewritten


def _erase_warehouse(settings: Settings, usecase: UseCase, value: str, subject: str) -> dict[str, int]:
    """The raw tables' rows of the subject (identifier nulled, or reference rows deleted) and every built table's
    hashed column, in one transaction."""
    from pipelines.ingest.warehouse import RAW_SCHEMA, placeholder, transaction

    tables, mark, changed = _columns(settings), placeholder(settings), {}
    if not tables:
        return changed
    with transaction(settings) as (cursor, _):
        for table, column in usecase.subject.columns.items():
            if column not in tables.get((RAW_SCHEMA, table), []):
                continue
            if usecase.sources.tables[table].day_partitioned:
                sql = f'UPDATE {RAW_SCHEMA}.{table} SET "{column}" = NULL WHERE "{column}" = {mark}'  # nosec B608 # names from the spec; the value is bound
            else:
                sql = f'DELETE FROM {RAW_SCHEMA}.{table} WHERE "{column}" = {mark}'  # nosec B608 # names from the spec; the value is bound
            changed[f"{RAW_SCHEMA}.{table}"] = _rows(cursor, sql, value)
        for (schema, table), columns in sorted(tables.items()):
            for column in (c for c in usecase.subject.derived if c in columns):
                sql = f'UPDATE "{schema}"."{table}" SET "{column}" = NULL WHERE "{column}" = {mark}'  # nosec B608 # names from the warehouse's catalog; the hash is bound
                changed[f"{schema}.{table}"] = changed.get(f"{schema}.{table}", 0) + _rows(cursor, sql, subject)
    return {name: n for name, n in changed.items() if n}


def _rows(cursor, sql: str, value: str) -> int:
    """Rows a statement changed (DuckDB answers with a count row, psycopg2 with rowcount)."""
    result = cursor.execute(sql, (value,))
    if hasattr(cursor, "rowcount") and cursor.rowcount is not None and cursor.rowcount >= 0:
        return int(cursor.rowcount)
    row = result.fetchone() if result is not None else None
    return int(row[0]) if row else 0


def _erase_online(settings: Settings, usecase: UseCase, subject: str) -> int:
    from pipelines.features.store import delete_online_entities

    return sum(delete_online_entities(settings, usecase, key, [subject]) for key in usecase.subject.derived)


def _erase_predictions(settings: Settings, usecase: UseCase, entities: list[str]) -> int:
    from serving.predictions import prediction_log

    return prediction_log(settings, usecase).delete(entities) if entities else 0


def _erase_reference_samples(settings: Settings, usecase: UseCase, entities: list[str], subject: str) -> list[int]:
    """Seal anew each registered reference sample that holds one of the subject's entities, without them."""
    import pandas as pd

    from pipelines.orchestration.training import REFERENCE_FILE
    from pipelines.registry.registry import Registry
    from pipelines.security.audit import audit_ledger
    from pipelines.security.store import artifact_store
    from pipelines.security.vault import Vault

    if not entities:
        return []
    ledger = audit_ledger(settings)
    registry = Registry(artifact_store(settings, ledger), Vault.from_settings(settings), ledger)
    resealed, entity_id = [], usecase.features.entity_id
    for version in registry.versions(usecase.name):
        _, files = registry.load_files(usecase.name, version, [REFERENCE_FILE])
        sample = pd.read_parquet(io.BytesIO(files[REFERENCE_FILE]))
        if entity_id not in sample.columns or not sample[entity_id].astype(str).isin(entities).any():
            continue
        kept = sample[~sample[entity_id].astype(str).isin(entities)]
        buffer = io.BytesIO()
        kept.to_parquet(buffer, index=False)
        registry.amend_file(usecase.name, version, REFERENCE_FILE, buffer.getvalue(),
                            {"erasure": subject, "at": _now(), "rows": int(len(sample) - len(kept))})  # fmt: skip
        resealed.append(version)
    return resealed


def _mark_versions(settings: Settings, usecase: UseCase, subject: str, partitions: list[str]) -> list[int]:
    """The versions whose lineage lists a raw partition that held the subject, marked in the registry."""
    from pipelines.registry.registry import Registry
    from pipelines.security.audit import audit_ledger
    from pipelines.security.store import artifact_store
    from pipelines.security.vault import Vault

    ledger = audit_ledger(settings)
    registry = Registry(artifact_store(settings, ledger), Vault.from_settings(settings), ledger)
    held = {tuple(p.split(" ", 1)) for p in partitions}
    affected = []
    for version in registry.versions(usecase.name):
        lineage = registry.manifest(usecase.name, version)["lineage"]
        used = {(t, d) for t, days in lineage["raw_partitions"].items() for d in days}
        used |= {(t, "reference") for t in lineage.get("raw_reference", {})}
        if used & held:
            affected.append(version)
    if affected:
        registry.record_erasure(usecase.name, subject, affected)
    return affected


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
