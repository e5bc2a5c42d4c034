"""Salted hashing of personal data (tail numbers), the same in dbt (both targets) and in Python."""

from __future__ import annotations

import hashlib

SALT_ENV = "DBT_ENV_SECRET_PII_SALT"  # dbt scrubs DBT_ENV_SECRET_* values from its logs


def hash_pii(value: str | None, salt: str) -> str | None:
    """sha256(salt | '|' | value) as hex; the dbt macro hash_pii computes the same."""
    if value is None:
        return None
    return hashlib.sha256(f"{salt}|{value}".encode()).hexdigest()
