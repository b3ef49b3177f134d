"""Object-store fixtures: ``db`` is ``Flowcept.db`` on SQLite or on PostgreSQL (a private schema per test), with
settings pointing at the same database, so a running ``Flowcept`` writes where the test reads."""

from __future__ import annotations

import pytest

from tests.conftest import write_settings
from tests.store._pg import private_schema

STORES = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def store_settings(kind: str, tmp_path, dsn: str | None = None) -> str:
    """The ``databases`` section of a settings file for ``kind`` (the JSONL buffer file off)."""
    if kind == "sqlite":
        dbs = f"  sqlite:\n    path: {tmp_path / 'store.sqlite'}\n"
    else:
        dbs = f"  postgres:\n    enabled: true\n    uri: \"{dsn}\"\n"
    return f"databases:\n{dbs}project:\n  dump_buffer:\n    enabled: false\n"


@pytest.fixture(name="kind", params=STORES)
def fixture_kind(request):
    return request.param


@pytest.fixture(name="settings_text")
def fixture_settings_text(kind, tmp_path, pg_dsn):
    """Settings text for the store under test (a fresh PostgreSQL schema per test)."""
    if kind == "sqlite":
        yield store_settings(kind, tmp_path)
        return
    pytest.importorskip("psycopg")
    with private_schema(pg_dsn) as dsn:
        yield store_settings(kind, tmp_path, dsn)


@pytest.fixture(name="db")
def fixture_db(settings_text, tmp_path, monkeypatch):
    """``Flowcept.db`` on the store under test."""
    from flowcept import Flowcept

    write_settings(tmp_path, settings_text, monkeypatch)
    db = Flowcept.db
    yield db
    db.object_store.close()
    db.close()


def corrupt(db, doc: dict) -> None:
    """Flip one byte of the stored content of ``doc``'s version, keeping its size."""
    objects = db.object_store
    sha = doc["data_sha256"]
    if doc["storage_type"] == "file":
        path = objects.blob_path(sha)
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
        return
    with objects._transaction() as ex:
        if doc["storage_type"] == "in_object":
            sql = "UPDATE object_data SET data = ? WHERE sha256 = ?"
            row = ex(objects._sql("SELECT data FROM object_data WHERE sha256 = ?"), (sha,)).fetchone()
            data = bytearray(row[0])
            data[0] ^= 0xFF
            ex(objects._sql(sql), (bytes(data), sha))
        else:  # postgres chunks
            ex("UPDATE object_chunks SET data = set_byte(data, 0, get_byte(data, 0) # 255) "
               "WHERE seq = 0 AND blob_id = (SELECT blob_id FROM object_blobs WHERE sha256 = %s)", (sha,))
