"""CLI fixtures: a click runner and a PostgreSQL DSN on a private schema."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from tests.store._pg import private_schema


@pytest.fixture(name="runner")
def fixture_runner():
    return CliRunner()


@pytest.fixture(name="cli_pg_dsn", scope="session")
def fixture_cli_pg_dsn(pg_dsn):
    pytest.importorskip("psycopg")
    with private_schema(pg_dsn) as dsn:
        yield dsn


@pytest.fixture(name="setenv")
def fixture_setenv(monkeypatch):
    """Set env vars and reload the settings, as a fresh `flowcept` process would see them."""
    from flowcept.settings import reload_settings

    def setenv(**env: str) -> None:
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        reload_settings()

    return setenv
