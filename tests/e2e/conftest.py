"""The e2e tests reuse the session's built warehouse and feature store where they need days of data."""

from tests.integration.conftest import built  # noqa: F401  (a session fixture, shared)
