"""Store fixtures: a PostgreSQL DSN on a private schema (the server is required; psycopg missing skips)."""

from __future__ import annotations

import pytest

from ._pg import private_schema

#: Every contract test runs once per backend (add a backend by adding a branch to _make_store).
STORE_KINDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(name="pg_store_dsn", scope="session")
def fixture_pg_store_dsn(pg_dsn):
    pytest.importorskip("psycopg")
    with private_schema(pg_dsn) as dsn:
        yield dsn


def _make_store(kind: str, tmp_path, request=None):
    if kind == "sqlite":
        from flowcept.store.sqlite import SqliteStore

        return SqliteStore(tmp_path / "sub" / "x.sqlite")
    if kind == "postgres":
        from flowcept.store.postgres import PostgresStore

        store = PostgresStore(request.getfixturevalue("pg_store_dsn"))
        for collection in ("tasks", "workflows", "agents"):
            store.delete(collection, {})
        return store
    raise AssertionError(kind)


@pytest.fixture(name="store", params=STORE_KINDS)
def fixture_store(request, tmp_path):
    """An empty store of each backend."""
    store = _make_store(request.param, tmp_path, request)
    yield store
    store.close()
