"""Export and report fixtures: the known workflow stored in SQLite (default settings) or PostgreSQL (private schema)."""

from __future__ import annotations

import shutil

import pytest

from tests.export._records import make_records
from tests.store._pg import private_schema


@pytest.fixture(name="export_pg_dsn", scope="session")
def fixture_export_pg_dsn(pg_dsn):
    pytest.importorskip("psycopg")
    with private_schema(pg_dsn) as dsn:
        yield dsn


@pytest.fixture(name="backend", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def fixture_backend(request, monkeypatch):
    """The store kind under test; settings point flowcept at it (SQLite: the test's own default file)."""
    from flowcept.settings import reload_settings

    if request.param == "postgres":
        dsn = request.getfixturevalue("export_pg_dsn")
        monkeypatch.setenv("FLOWCEPT_POSTGRES_ENABLED", "true")
        monkeypatch.setenv("FLOWCEPT_POSTGRES_URI", dsn)
        reload_settings()
    return request.param


@pytest.fixture(name="store")
def fixture_store(backend):
    """An open store of the backend (closed after the test)."""
    from flowcept.settings import get_settings
    from flowcept.store import make_store

    store = make_store(get_settings(), for_reading=True)
    yield store
    store.close()


@pytest.fixture(name="known")
def fixture_known(store):
    """``(workflow_id, records)`` of the known workflow, stored."""
    wf, records = make_records()
    assert store.upsert([dict(r) for r in records]) == len(records)
    return wf, records


@pytest.fixture(name="pdftoppm")
def fixture_pdftoppm() -> str:
    path = shutil.which("pdftoppm")
    assert path, "pdftoppm is missing: apt-get install -y poppler-utils (.ci/run installs it)"
    return path
