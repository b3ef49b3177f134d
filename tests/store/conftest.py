"""Store fixtures: a PostgreSQL DSN on a private schema (the server is required; psycopg missing skips)."""

from __future__ import annotations

import pytest

from ._pg import private_schema


@pytest.fixture(name="pg_store_dsn", scope="session")
def fixture_pg_store_dsn(pg_dsn):
    pytest.importorskip("psycopg")
    with private_schema(pg_dsn) as dsn:
        yield dsn
