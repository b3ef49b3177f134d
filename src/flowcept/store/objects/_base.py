"""The part of an object store every backend shares: versioned metadata rows, inline content, checked reads,
deletion.

A backend supplies the connection (``_transaction``, ``_reading``), the per-object write lock, the blob area
(``_write_blob``, ``_blob_chunks``, ``_drop_blobs``) and what keeps deduplicated content alive between a save and
its publication (``_saving``, ``_pin_content``, ``_exclude_saves``); the SQL here is written once, with ``?``
placeholders that a PostgreSQL backend turns into ``%s``.

Deleting while others save the same bytes (content is shared by sha256 between objects and versions)::

    save:    (_saving) write content, or find it stored ──▶ publish: transaction: _pin_content, metadata rows
    delete:  transaction: _exclude_saves, delete the rows, then the inline content and (_drop_blobs) the blobs
             that no remaining version names ──▶ _after_delete: blobs a backend removes outside that transaction

A save finding its content already stored must never publish after that content was dropped: PostgreSQL runs the
save in one transaction that takes a shared lock before it looks for the stored content, and a delete takes it
exclusively (``_exclude_saves``); SQLite serializes both transactions, and a save keeps a private link to its
content file until it published, restoring the file if a delete removed it in between.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import logging
import os
import threading
import time
from typing import Any, BinaryIO, Callable, ContextManager, Iterable, Iterator, Mapping, NamedTuple

import orjson

from flowcept.errors import ObjectIntegrityError, ObjectNotFoundError, QueryError, StoreError
from flowcept.store._filters import check_limit, compile_filter, compile_order_by, decode_docs, split_path
from flowcept.store.objects._content import iter_chunks, read_exact

#: Content up to this size is kept inline (a row of ``object_data``); larger content goes to the blob area.
INLINE_MAX = 256 * 1024
#: With ``save_data_in_collection=True`` (the reference's "keep it in the document"), inline up to this size.
INLINE_MAX_FORCED = 16 * 1024 * 1024
HASH_ALGO = "sha256"

# Metadata fields a caller may set; an update that leaves one None keeps the stored value.
META_FIELDS = ("task_id", "workflow_id", "campaign_id", "object_type", "custom_metadata", "tags")
# Fields describing a version's content (kept by a metadata update).
CONTENT_FIELDS = ("object_size_bytes", "data_sha256", "data_hash_algo", "storage_type", "pickle")
#: Fields :meth:`ObjectStore.delete` selects objects by (scalar fields of every object's metadata).
DELETE_KEYS = ("object_id", "task_id", "workflow_id", "campaign_id", "object_type", "data_sha256")

_log = logging.getLogger(__name__)

#: An executor: ``ex(sql, params)`` runs one statement and returns a cursor (``fetchone``/``fetchall``).
Executor = Callable[[str, tuple], Any]


def history_id(object_id: str, version: int) -> str:
    """Primary key of one version's row in ``object_history``."""
    return f"{object_id}@{version}"


class BlobInfo(NamedTuple):
    """Content already written to the blob area and verified."""

    sha256: str
    size: int
    storage_type: str
    #: A private copy of the content (a path) kept until the metadata is published, when the backend keeps one.
    spare: str | None = None


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

    def _saving(self) -> ContextManager[None]:
        """Held around one save, from writing its content to publishing its metadata."""
        return contextlib.nullcontext()

    def _pin_content(self, ex: Executor, blob: BlobInfo | None) -> None:
        """In the publishing transaction, before the content's rows are written: make sure no delete removes the
        content this version names until the transaction ends (restore it from ``blob.spare`` if one did)."""

    def _exclude_saves(self, ex: Executor) -> None:
        """In a deleting transaction: wait for saves between their content check and their commit, and keep new
        ones out until the transaction ends."""

    def _drop_blobs(self, ex: Executor, shas: list[str]) -> None:
        """Remove blobs no version names, in the deleting transaction (a backend may defer it: see
        :meth:`_after_delete`)."""

    def _after_delete(self, shas: list[str]) -> None:
        """After the deleting transaction committed: what ``_drop_blobs`` deferred."""

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
        with self._saving():
            if len(head) <= inline_max:
                inline = head
                blob = BlobInfo(hashlib.sha256(head).hexdigest(), len(head), "in_object")
            else:
                blob = self._write_blob(itertools.chain((head,), iter_chunks(reader)))
            try:
                content = {"object_size_bytes": blob.size, "data_sha256": blob.sha256, "data_hash_algo": HASH_ALGO,
                           "storage_type": blob.storage_type, "pickle": bool(use_pickle)}
                return self._publish(object_id, fields, content, control_version, inline, blob=blob)
            finally:
                if blob.spare is not None:
                    with contextlib.suppress(OSError):
                        os.unlink(blob.spare)

    def update_metadata(self, object_id: str, fields: Mapping[str, Any], control_version: bool) -> dict:
        """Change metadata of the latest version (a new version when ``control_version``); content is kept.

        ``custom_metadata`` is merged key-wise into the stored one; other fields replace.

        Raises:
            ObjectNotFoundError: no object ``object_id``.
        """
        _check_object_id(object_id)
        return self._publish(object_id, fields, None, control_version, None, must_exist=True)

    def _publish(self, object_id: str, fields: Mapping[str, Any], content: dict | None, control_version: bool,
                 inline: bytes | None, must_exist: bool = False, blob: BlobInfo | None = None) -> dict:
        """Write the metadata of a new or updated version; ``content`` None keeps the stored version's content
        (read in this transaction, so a concurrent delete or save cannot make it stale)."""
        now = time.time()
        q, j = self._sql, self.json_param
        with self._transaction() as ex:
            self._pin_content(ex, blob)
            self._lock(ex, object_id)
            row = ex(q(f"SELECT {self.doc_column} FROM objects WHERE id = ?"), (object_id,)).fetchone()
            current = orjson.loads(row[0]) if row else None
            if current is None and must_exist:
                raise ObjectNotFoundError(f"object {object_id!r} not found")
            if content is None:
                content = {k: current[k] for k in CONTENT_FIELDS if k in current}
                if fields.get("custom_metadata") is not None:
                    fields = {**fields, "custom_metadata": {**(current.get("custom_metadata") or {}),
                                                            **fields["custom_metadata"]}}
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

    def delete(self, key_name: str, keys: Iterable[Any]) -> int:
        """Delete the objects whose latest version has ``key_name`` equal to one of ``keys``, every version of
        them, and the content no remaining version names.

        The metadata rows and inline content go in one transaction. Content shared (by sha256) with an object or
        version that remains stays, and a save of the same bytes running meanwhile keeps its content (see the
        module docstring). Tasks that generated or used a deleted object keep their references to it.

        Args:
            key_name: one of :data:`DELETE_KEYS`.
            keys: a list, tuple or set of strings or numbers; empty deletes nothing.

        Returns:
            How many objects were deleted (not counting their versions).

        Raises:
            QueryError: ``key_name`` or ``keys`` is not as described (the message names the allowed values).
        """
        keys = _check_delete_keys(key_name, keys)
        if not keys:
            return 0
        where, params = compile_filter({key_name: {"$in": keys}}, self.dialect)
        matched = f"object_id IN (SELECT id FROM objects WHERE {where})"
        cols, cparams = self._content_columns()
        with self._transaction() as ex:
            self._exclude_saves(ex)
            versions = ex(f"SELECT DISTINCT {cols} FROM object_history WHERE {matched}",
                          tuple(cparams + params)).fetchall()
            ex(f"DELETE FROM object_history WHERE {matched}", tuple(params))
            deleted = ex(f"DELETE FROM objects WHERE {where}", tuple(params)).rowcount
            inline = {sha for sha, kind in versions if sha is not None and kind == "in_object"}
            stored = {sha for sha, kind in versions if sha is not None and kind != "in_object"}
            for sha in sorted(inline - self._named(ex, inline, inline=True)):
                ex(self._sql("DELETE FROM object_data WHERE sha256 = ?"), (sha,))
            orphans = sorted(stored - self._named(ex, stored, inline=False))
            self._drop_blobs(ex, orphans)
        try:
            self._after_delete(orphans)
        except StoreError as exc:  # the objects are gone; what is left is unnamed content, never read again
            _log.warning("%d deleted objects: unused content could not be removed: %s", deleted, exc)
        return deleted

    def _content_columns(self) -> tuple[str, list]:
        """``data_sha256, storage_type`` of an ``object_history`` row, as SQL text columns with their parameters."""
        d = self.dialect
        sha, p1 = d.text_value(d.field(split_path("data_sha256")))
        kind, p2 = d.text_value(d.field(split_path("storage_type")))
        return f"{sha}, {kind}", p1 + p2

    def _named(self, ex: Executor, shas: set[str] | list[str], inline: bool) -> set[str]:
        """Which of ``shas`` a stored version names as its inline content (``inline``) or blob-area content."""
        if not shas:
            return set()
        flt = {"data_sha256": {"$in": sorted(shas)}, "storage_type": "in_object" if inline else {"$ne": "in_object"}}
        where, params = compile_filter(flt, self.dialect)
        cols, cparams = self._content_columns()
        rows = ex(f"SELECT DISTINCT {cols} FROM object_history WHERE {where}", tuple(cparams + params)).fetchall()
        return {row[0] for row in rows}

    # ---------------------------------------------------------------------------------------- reads

    def get(self, object_id: str, version: int | None = None) -> dict:
        """Metadata of ``object_id`` (its latest version, or ``version``).

        Raises:
            ObjectNotFoundError: no such object, or no such version (the message lists the stored ones).
        """
        _check_object_id(object_id)
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


def _check_delete_keys(key_name: Any, keys: Any) -> list:
    if key_name not in DELETE_KEYS:
        raise QueryError(f"cannot delete objects by {key_name!r}: key_name must be one of {', '.join(DELETE_KEYS)}")
    if not isinstance(keys, (list, tuple, set, frozenset)):
        raise QueryError(f"keys_list must be a list, tuple or set of {key_name} values (e.g. ['abc'], not 'abc'), "
                         f"got {type(keys).__name__}")
    bad = [k for k in keys if isinstance(k, bool) or not isinstance(k, (str, int, float))]
    if bad:
        raise QueryError(f"keys_list must hold strings or numbers (the {key_name} values to delete), got "
                         f"{bad[0]!r} ({type(bad[0]).__name__})")
    return list(dict.fromkeys(keys))


def _check_object_id(object_id: Any) -> None:
    if not isinstance(object_id, str) or not object_id:
        raise QueryError(f"object_id must be a non-empty string, got {object_id!r}")


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
