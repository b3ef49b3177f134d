"""Objects in the PostgreSQL store's database (same DSN, same schema), large content as ``bytea`` chunks.

::

    objects, object_history, object_data     metadata rows and inline content (as on SQLite)
    object_blobs  (blob_id, sha256 UNIQUE, size_bytes, n_chunks)       one row per distinct content
    object_chunks (blob_id, seq, data bytea)                          4 MiB pieces, read back one at a time

A save is one transaction: the blob's chunks, then its ``object_blobs`` row inserted with ``ON CONFLICT (sha256)
DO NOTHING`` (when the content is already stored the new chunks are deleted again, so identical bytes are kept
once), then the metadata. A writer that dies mid-way leaves nothing behind.

Deletes and saves of shared content: from just before a save looks for its content until it commits, it holds a
shared advisory lock (one per schema); a delete holds it exclusively for its whole transaction. So a delete never
drops content that a save found stored and is about to name, and the long part of a save (writing the chunks)
never waits for a delete nor holds one up.
"""

from __future__ import annotations

import contextlib
import hashlib
from typing import Any, Iterator

from flowcept.errors import BackendUnavailableError, ObjectIntegrityError, StoreError
from flowcept.store._filters import POSTGRES
from flowcept.store.objects._base import BlobInfo, ObjectStore, PerThreadConnections

try:
    import psycopg
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise BackendUnavailableError("PostgreSQL object store", "postgres") from exc

__all__ = ["PostgresObjectStore"]

CONNECT_TIMEOUT_S = 10
# pg_advisory_xact_lock key for creating the object tables ("fcob"); per-object locks hash the object id.
_SCHEMA_LOCK = 0x66636F62
# The advisory lock between saves (shared) and deletes (exclusive) of one schema's objects.
_CONTENT_LOCK = "hashtextextended('flowcept object content ' || current_schema(), 0)"
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS objects (id TEXT PRIMARY KEY, doc JSONB NOT NULL)",
    "CREATE TABLE IF NOT EXISTS object_history (id TEXT PRIMARY KEY, object_id TEXT NOT NULL, "
    "version INTEGER NOT NULL, doc JSONB NOT NULL)",
    "CREATE INDEX IF NOT EXISTS object_history_object_id ON object_history (object_id, version)",
    "CREATE TABLE IF NOT EXISTS object_data (sha256 TEXT PRIMARY KEY, data BYTEA NOT NULL)",
    "CREATE SEQUENCE IF NOT EXISTS object_blob_ids",
    "CREATE TABLE IF NOT EXISTS object_blobs (blob_id BIGINT PRIMARY KEY, sha256 TEXT NOT NULL UNIQUE, "
    "size_bytes BIGINT NOT NULL, n_chunks INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS object_chunks (blob_id BIGINT NOT NULL, seq INTEGER NOT NULL, "
    "data BYTEA NOT NULL, PRIMARY KEY (blob_id, seq))",
)


class PostgresObjectStore(ObjectStore):
    """Objects beside a :class:`flowcept.store.postgres.PostgresStore`.

    One autocommit connection per thread (reopened in a forked child); writes use explicit transactions.

    Args:
        dsn: the store's connection string (its ``search_path`` option, if any, picks the schema).
    """

    dialect = POSTGRES
    doc_column = "doc::text"
    json_param = "%s::jsonb"

    def __init__(self, dsn: str):
        self.dsn = dsn
        self._schema_ready = False
        self._conns = PerThreadConnections(self._connect)

    def __repr__(self) -> str:
        return "PostgresObjectStore(...)"

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s")

    @contextlib.contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        try:
            yield
        except psycopg.Error as exc:
            if isinstance(exc, psycopg.OperationalError):
                self._conns.drop()  # reconnect on the next call
            detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise StoreError(f"PostgreSQL object store: {action} failed: {detail}") from exc

    def _connect(self):
        conn = psycopg.connect(self.dsn, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S)
        try:
            if not self._schema_ready:
                with conn.transaction():
                    conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
                    for stmt in _SCHEMA:
                        conn.execute(stmt)
                self._schema_ready = True
        except BaseException:
            conn.close()
            raise
        return conn

    def _conn(self):
        conn = self._conns.get()
        if conn.closed or conn.broken:
            self._conns.drop()
            conn = self._conns.get()
        return conn

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[Any]:
        with self._errors("writing object metadata"):
            conn = self._conn()
            with conn.transaction():
                yield conn.execute

    @contextlib.contextmanager
    def _reading(self) -> Iterator[Any]:
        with self._errors("reading objects"):
            yield self._conn().execute

    def _lock(self, ex, object_id: str) -> None:
        ex("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (object_id,))

    def _saving(self):
        return self._transaction()  # the blob's and the metadata's transactions nest in it (savepoints)

    def _pin_content(self, ex, blob: BlobInfo | None) -> None:
        ex(f"SELECT pg_advisory_xact_lock_shared({_CONTENT_LOCK})", ())

    def _exclude_saves(self, ex) -> None:
        ex(f"SELECT pg_advisory_xact_lock({_CONTENT_LOCK})", ())

    def _drop_blobs(self, ex, shas: list[str]) -> None:
        if shas:
            ex("DELETE FROM object_chunks WHERE blob_id IN (SELECT blob_id FROM object_blobs WHERE sha256 = ANY(%s))",
               (shas,))
            ex("DELETE FROM object_blobs WHERE sha256 = ANY(%s)", (shas,))

    def _write_blob(self, chunks: Iterator[bytes]) -> BlobInfo:
        digest, size, n = hashlib.sha256(), 0, 0
        with self._transaction() as ex:
            blob_id = ex("SELECT nextval('object_blob_ids')", ()).fetchone()[0]
            for n, chunk in enumerate(chunks, 1):
                ex("INSERT INTO object_chunks (blob_id, seq, data) VALUES (%s, %s, %s)", (blob_id, n - 1, chunk))
                digest.update(chunk)
                size += len(chunk)
            sha = digest.hexdigest()
            stored = ex("SELECT count(*), coalesce(sum(length(data)), 0) FROM object_chunks WHERE blob_id = %s",
                        (blob_id,)).fetchone()
            if (stored[0], stored[1]) != (n, size):
                raise ObjectIntegrityError(f"blob {sha}: {stored[1]} bytes in {stored[0]} chunks stored after "
                                           f"writing {size} bytes in {n}")
            # From here to the save's commit a delete cannot drop the stored copy found below (put: _saving).
            self._pin_content(ex, None)
            row = ex("INSERT INTO object_blobs (blob_id, sha256, size_bytes, n_chunks) VALUES (%s, %s, %s, %s) "
                     "ON CONFLICT (sha256) DO NOTHING RETURNING blob_id", (blob_id, sha, size, n)).fetchone()
            if row is None:  # identical content is stored already: keep that copy only
                ex("DELETE FROM object_chunks WHERE blob_id = %s", (blob_id,))
        return BlobInfo(sha, size, "chunks")

    def _blob_chunks(self, sha256: str, size: int) -> Iterator[bytes]:
        with self._reading() as ex:
            row = ex("SELECT blob_id, n_chunks FROM object_blobs WHERE sha256 = %s", (sha256,)).fetchone()
        if row is None:
            raise ObjectIntegrityError(f"the content blob {sha256} is missing")
        blob_id, n_chunks = row
        for seq in range(n_chunks):
            # One chunk per query keeps memory bounded by the chunk size, whatever the object's size.
            with self._errors("reading object content"):
                got = self._conn().execute("SELECT data FROM object_chunks WHERE blob_id = %s AND seq = %s",
                                           (blob_id, seq), binary=True).fetchone()
            if got is None:
                raise ObjectIntegrityError(f"the content blob {sha256} lacks chunk {seq} of {n_chunks}")
            yield bytes(got[0])

    def blob_count(self) -> int:
        with self._reading() as ex:
            return ex("SELECT count(*) FROM object_blobs", ()).fetchone()[0]

    def close(self) -> None:
        self._conns.close()
