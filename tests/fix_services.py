"""Service fixtures: the real Redis and PostgreSQL servers (127.0.0.1 by default; overridable)."""

from __future__ import annotations

import os

import pytest


def pytest_addoption(parser):
    parser.addoption("--redis-url", default=os.environ.get("FLOWCEPT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.addoption("--pg-dsn", default=os.environ.get("FLOWCEPT_TEST_PG_DSN",
                                                        "postgresql://postgres@127.0.0.1:5432/test"))


@pytest.fixture(name="redis_url", scope="session")
def fixture_redis_url(request) -> str:
    return request.config.getoption("--redis-url")


@pytest.fixture(name="pg_dsn", scope="session")
def fixture_pg_dsn(request) -> str:
    return request.config.getoption("--pg-dsn")
