"""`platform new-usecase NAME [--source KIND]`: the skeleton of a new use case, from the templates beside this file.

It writes the spec (its raw table read from a package file, a database, an object store or the warehouse:
templates/usecase/sources/<kind>.yaml), the Feast definitions, the dbt models (staging and marts, marked TODO),
the expectation suite, the five one-call DAG files and a test file of the use case's own data tests.
The skeleton is valid as written: its DAGs parse and pass the integrity tests at once, and its spec
loads; its data tests fail until the author replaces the TODOs with the real source, models and
suite (the README's "Add a use case" walks through it). Nothing is overwritten: a name whose files
exist is refused before anything is written.
"""

from __future__ import annotations

import json
from pathlib import Path
from string import Template

import yaml

from pipelines.errors import SettingsError
from pipelines.usecases.spec import NAME

TEMPLATES = Path(__file__).with_name("templates")
DAG_KINDS = ("ingest", "backfill", "training", "deploy", "monitoring", "housekeeping", "batch_scoring")
SOURCE_KINDS = ("package_file", "database", "object_store", "warehouse")


def skeleton(name: str) -> dict[str, tuple[str, dict[str, str]]]:
    """{path relative to the repository: (template, extra substitutions)} of a use case's files."""
    files = {
        f"usecases/{name}/usecase.yaml": ("usecase/usecase.yaml", {}),
        f"usecases/{name}/features.py": ("usecase/features.py", {}),
        f"dbt/models/{name}/staging/{name}/_{name}__sources.yml": ("dbt/staging/_sources.yml", {}),
        f"dbt/models/{name}/staging/{name}/stg_{name}__events.sql": ("dbt/staging/stg_events.sql", {}),
        f"dbt/models/{name}/marts/_{name}__models.yml": ("dbt/marts/_models.yml", {}),
        f"dbt/models/{name}/marts/{name}_rows.sql": ("dbt/marts/rows.sql", {}),
        f"dbt/models/{name}/marts/{name}_daily.sql": ("dbt/marts/daily.sql", {}),
        f"expectations/raw_{name}_events.json": ("suite.json", {}),
        f"tests/usecases/test_{name}.py": ("test_usecase.py", {}),
    }
    files.update({f"dags/{name}_{kind}.py": ("dag.py", {"kind": kind}) for kind in DAG_KINDS})
    return files


def new_usecase(root: Path, name: str, title: str | None = None, source: str = "package_file") -> list[Path]:
    """Write use case `name`'s skeleton, its raw table read from a `source` of that kind, under the repository
    `root`; returns the files written."""
    if not NAME.match(name):
        raise SettingsError(
            f"use-case name {name!r} must be 2-40 lowercase letters, digits or _, starting with a letter"
        )
    if source not in SOURCE_KINDS:
        raise SettingsError(f"--source {source!r} is not a source kind: {', '.join(SOURCE_KINDS)}")
    title = title or name.replace("_", " ").capitalize()
    sources = Template((TEMPLATES / "usecase" / "sources" / f"{source}.yaml.tmpl").read_text()).substitute(name=name)
    columns = list(yaml.safe_load(sources)["sources"]["tables"]["events"]["columns"])
    files = {root / path: spec for path, spec in skeleton(name).items()}
    existing = sorted(str(path.relative_to(root)) for path in files if path.exists())
    if existing:
        raise SettingsError(f"use case {name!r} exists already ({', '.join(existing)}); choose another name")
    written = []
    try:
        for path, (template, extra) in files.items():
            text = Template((TEMPLATES / f"{template}.tmpl").read_text())
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(
                text.safe_substitute(name=name, title=title, sources=sources, column_set=json.dumps(columns), **extra)
            )
            written.append(path)
    except BaseException:
        for path in written:  # nothing half-written stays behind
            path.unlink(missing_ok=True)
        raise
    return written
