"""The part of an object store every backend shares: versioned metadata rows, inline content, checked reads.

A backend supplies the connection (``_transaction``, ``_reading``), the per-object write lock and the blob area
(``_write_blob``, ``_blob_chunks``); the SQL here is written once, with ``?`` placeholders that a PostgreSQL
backend turns into ``%s``.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
import threading
import time
from typing import Any, BinaryIO, Callable, ContextManager, Iterator, Mapping

import orjson

from flowcept.errors import ObjectIntegrityError, ObjectNotFoundError, QueryError
from flowcept.store._filters import check_limit, compile_filter, compile_order_by, decode_docs
from flowcept.store.objects._content import iter_chunks, read_exact

#: Content up to this size is kept inline (a row of ``object_data``); larger content goes to the blob area.
INLINE_MAX = 256 * 1024
#: With ``save_data_in_collection=True`` (the reference's "keep it in the document"), inline up to this size.
INLINE_MAX_FORCED = 16 * 1024 * 1024
HASH_ALGO = "sha256"

# Metadata fields a caller may set; an update that leaves one None keeps the stored value.
META_FIELDS = ("task_id", "workflow_id", "campaign_id", "object_type", "custom_metadata", "tags")

#: An executor: ``ex(sql, params)`` runs one statement and returns a cursor (``fetchone``/``fetchall``).
Executor = Callable[[str, tuple], Any]


def history_id(object_id: str, version: int) -> str:
    """Primary key of one version's row in ``object_history``."""
    return f"{object_id}@{version}"


class BlobInfo(tuple):
    """``(sha256 hex, size in bytes, storage_type)`` of content already written and verified."""

    __slots__ = ()

    def __new__(cls, sha256: str, size: int, storage_type: str):
        return super().__new__(cls, (sha256, size, storage_type))


class ObjectStore:
    """Versioned objects in one database; every method may block and raises ``StoreError`` subclasses only.

    Tables (same shape on both backends): ``objects`` (id = object_id, doc = the latest version's metadata),
    ``object_history`` (id = ``<object_id>@<version>``, one row per version, including the latest),
    ``object_data`` (sha256 -> inline content).
    """

    dialect: Any
    doc_column = "doc"
    json_param = "?"

    # ---------------------------------------------------------------------------------------- backend hooks

    def _transaction(self) -> ContextManager[Executor]:
        raise NotImplementedError

    def _reading(self) -> ContextManager[Executor]:
        raise NotImplementedError

    def _lock(self, ex: Executor, object_id: str) -> None:
        """Serialize writers of ``object_id`` until the transaction ends."""

    def _write_blob(self, chunks: Iterator[bytes]) -> BlobInfo:
        """Write content to the blob area, content-addressed, and verify it; nothing is visible if this fails."""
        raise NotImplementedError

    def _blob_chunks(self, sha256: str, size: int) -> Iterator[bytes]:
        """The stored bytes of blob ``sha256`` (unverified: :meth:`iter_content` checks them)."""
        raise NotImplementedError

    def blob_count(self) -> int:
        """How many distinct blobs the blob area holds (inline content not counted)."""
        raise NotImplementedError

    def close(self) -> None:
        """Release connections; idempotent."""

    def _sql(self, sql: str) -> str:
        return sql

    # ---------------------------------------------------------------------------------------- writes

    def put(self, reader: BinaryIO, object_id: str, fields: Mapping[str, Any], control_version: bool,
            use_pickle: bool, inline_max: int = INLINE_MAX) -> dict:
        """Store the content of ``reader`` as a version of ``object_id``; returns the published metadata.

        The content is written and verified first, the metadata published after it in one transaction, so a
        crash at any point leaves either the previous state or the new version, never half of one.
        """
        head = read_exact(reader, inline_max + 1)
        inline = None
        if len(head) <= inline_max:
            inline = head
            blob = BlobInfo(hashlib.sha256(head).hexdigest(), len(head), "in_object")
        else:
            blob = self._write_blob(itertools.chain((head,), iter_chunks(reader)))
        content = {"object_size_bytes": blob[1], "data_sha256": blob[0], "data_hash_algo": HASH_ALGO,
                   "storage_type": blob[2], "pickle": bool(use_pickle)}
        return self._publish(object_id, fields, content, control_version, inline)

    def update_metadata(self, object_id: str, fields: Mapping[str, Any], control_version: bool) -> dict:
        """Change metadata of the latest version (a new version when ``control_version``); content is kept.

        ``custom_metadata`` is merged key-wise into the stored one; other fields replace.

        Raises:
            ObjectNotFoundError: no object ``object_id``.
        """
        current = self.get(object_id)
        fields = dict(fields)
        if fields.get("custom_metadata") is not None:
            fields["custom_metadata"] = {**(current.get("custom_metadata") or {}), **fields["custom_metadata"]}
        content = {k: current[k] for k in ("object_size_bytes", "data_sha256", "data_hash_algo", "storage_type",
                                           "pickle") if k in current}
        return self._publish(object_id, fields, content, control_version, None, must_exist=True)

    def _publish(self, object_id: str, fields: Mapping[str, Any], content: dict, control_version: bool,
                 inline: bytes | None, must_exist: bool = False) -> dict:
        now = time.time()
        q, j = self._sql, self.json_param
        with self._transaction() as ex:
            self._lock(ex, object_id)
            row = ex(q(f"SELECT {self.doc_column} FROM objects WHERE id = ?"), (object_id,)).fetchone()
            current = orjson.loads(row[0]) if row else None
            if current is None and must_exist:
                raise ObjectNotFoundError(f"object {object_id!r} not found")
            doc: dict[str, Any] = {"object_id": object_id}
            for key in META_FIELDS:
                value = fields.get(key)
                if value is None and current is not None:
                    value = current.get(key)
                if value is not None:
                    doc[key] = value
            if current is None:
                doc["version"] = 0
                doc["created_at"] = now
            else:
                doc["created_at"] = current.get("created_at", now)
                if control_version:
                    doc["version"] = current["version"] + 1
                    doc["prev_version"] = current["version"]
                else:
                    doc["version"] = current["version"]
                    if "prev_version" in current:
                        doc["prev_version"] = current["prev_version"]
            doc["updated_at"] = now
            doc.update(content)
            if inline is not None:
                ex(q("INSERT INTO object_data (sha256, data) VALUES (?, ?) ON CONFLICT (sha256) DO NOTHING"),
                   (content["data_sha256"], inline))
            text = orjson.dumps(doc).decode()
            ex(q(f"INSERT INTO objects (id, doc) VALUES (?, {j}) ON CONFLICT (id) DO UPDATE SET doc = excluded.doc"),
               (object_id, text))
            snapshot = orjson.dumps({**doc, "source": "objects_snapshot"}).decode()
            ex(q(f"INSERT INTO object_history (id, object_id, version, doc) VALUES (?, ?, ?, {j}) "
                 "ON CONFLICT (id) DO UPDATE SET doc = excluded.doc"),
               (history_id(object_id, doc["version"]), object_id, doc["version"], snapshot))
        return doc

    # ---------------------------------------------------------------------------------------- reads

    def get(self, object_id: str, version: int | None = None) -> dict:
        """Metadata of ``object_id`` (its latest version, or ``version``).

        Raises:
            ObjectNotFoundError: no such object, or no such version (the message lists the stored ones).
        """
        if not isinstance(object_id, str) or not object_id:
            raise QueryError(f"object_id must be a non-empty string, got {object_id!r}")
        d, q = self.doc_column, self._sql
        with self._reading() as ex:
            if version is None:
                row = ex(q(f"SELECT {d} FROM objects WHERE id = ?"), (object_id,)).fetchone()
            else:
                if isinstance(version, bool) or not isinstance(version, int):
                    raise QueryError(f"version must be an int, got {version!r}")
                row = ex(q(f"SELECT {d} FROM object_history WHERE id = ?"),
                         (history_id(object_id, version),)).fetchone()
            if row is not None:
                doc = orjson.loads(row[0])
                doc.pop("source", None)
                return doc
            versions = [r[0] for r in ex(q("SELECT version FROM object_history WHERE object_id = ? "
                                           "ORDER BY version"), (object_id,)).fetchall()]
        if not versions:
            raise ObjectNotFoundError(f"object {object_id!r} not found")
        raise ObjectNotFoundError(f"object {object_id!r} has no version {version} "
                                  f"(stored versions: {', '.join(map(str, versions))})")

    def history(self, object_id: str) -> list[dict]:
        """Metadata of every stored version of ``object_id``, newest first (each with ``source``).

        Raises:
            ObjectNotFoundError: no such object.
        """
        with self._reading() as ex:
            rows = ex(self._sql(f"SELECT {self.doc_column} FROM object_history WHERE object_id = ? "
                                "ORDER BY version DESC"), (object_id,)).fetchall()
        if not rows:
            raise ObjectNotFoundError(f"object {object_id!r} not found")
        return decode_docs(rows, None)

    def find(self, filter: Mapping | None = None, projection: Any = None, sort: Any = None, limit: int = 0,
             collection: str = "objects") -> list[dict]:
        """Metadata matching a Mongo-style filter (see :mod:`flowcept.store._filters`): the latest versions
        (``objects``) or every version (``object_history``)."""
        if collection not in ("objects", "object_history"):
            raise QueryError(f"unknown object collection {collection!r}; collections: objects, object_history")
        where, params = compile_filter(filter, self.dialect)
        order, oparams = compile_order_by(sort, self.dialect)
        limit = check_limit(limit)
        sql = f"SELECT {self.doc_column} FROM {collection} WHERE {where}{order}"
        params = params + oparams
        if limit:
            sql += f" LIMIT {self.dialect.placeholder}"
            params.append(limit)
        with self._reading() as ex:
            rows = ex(sql, tuple(params)).fetchall()
        return decode_docs(rows, projection)

    def iter_content(self, doc: Mapping) -> Iterator[bytes]:
        """The content of the version ``doc`` describes, in chunks; checked against its size and sha256.

        Raises:
            ObjectIntegrityError: (at the end, or as soon as too many bytes come) the bytes do not match; a
                caller that must never expose wrong bytes keeps them aside until the iteration ends.
        """
        sha, size = doc["data_sha256"], doc["object_size_bytes"]
        digest, seen = hashlib.sha256(), 0
        if doc.get("storage_type") == "in_object":
            with self._reading() as ex:
                row = ex(self._sql("SELECT data FROM object_data WHERE sha256 = ?"), (sha,)).fetchone()
            if row is None:
                raise ObjectIntegrityError(f"{_label(doc)}: its inline content {sha} is missing")
            chunks: Iterator[bytes] = iter((bytes(row[0]),))
        else:
            chunks = self._blob_chunks(sha, size)
        for chunk in chunks:
            digest.update(chunk)
            seen += len(chunk)
            if seen > size:
                break
            yield chunk
        if seen != size or digest.hexdigest() != sha:
            raise ObjectIntegrityError(
                f"{_label(doc)}: stored content does not match its checksum (expected {size} bytes with "
                f"sha256 {sha}, read {seen} bytes{'' if seen != size else ' with sha256 ' + digest.hexdigest()})")

    def read_bytes(self, doc: Mapping) -> bytes:
        """The whole content of ``doc``'s version, verified (in memory: prefer :meth:`iter_content` for big ones)."""
        return b"".join(list(self.iter_content(doc)))


def _label(doc: Mapping) -> str:
    return f"object {doc.get('object_id')!r} version {doc.get('version')}"


# Connections inherited through fork: never used nor closed in the child (closing would end the parent's session
# or disturb its SQLite file locks), only kept referenced so garbage collection does not close them either.
_ABANDONED: list[Any] = []


class PerThreadConnections:
    """One connection per thread, made by ``connect()`` on first use and made anew in a forked child."""

    def __init__(self, connect: Callable[[], Any]):
        self._connect = connect
        self._local = threading.local()
        self._lock = threading.Lock()
        self._all: list[Any] = []
        self._pid = os.getpid()

    def get(self) -> Any:
        if os.getpid() != self._pid:
            with self._lock:
                _ABANDONED.extend(self._all)
                self._all, self._local, self._pid = [], threading.local(), os.getpid()
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def drop(self) -> None:
        """Forget this thread's connection (it broke); the next :meth:`get` makes a new one."""
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            with self._lock:
                self._all = [c for c in self._all if c is not conn]
            with contextlib.suppress(Exception):
                conn.close()

    def close(self) -> None:
        """Close every connection this process made; idempotent."""
        with self._lock:
            conns, self._all = self._all, []
            self._local = threading.local()
            if os.getpid() != self._pid:
                _ABANDONED.extend(conns)
                return
        for conn in conns:
            with contextlib.suppress(Exception):
                conn.close()


@contextlib.contextmanager
def translate(errors: tuple[type[BaseException], ...], describe: Callable[[BaseException], Exception]):
    """Turn library errors into flowcept's (``raise describe(exc) from exc``); flowcept's own pass through."""
    try:
        yield
    except errors as exc:
        raise describe(exc) from exc
