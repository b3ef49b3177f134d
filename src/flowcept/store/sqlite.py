"""SQLite store: one file, one ``(id TEXT PRIMARY KEY, doc TEXT)`` table per collection, WAL mode.

Several processes may write the same file: each write batch is one ``BEGIN IMMEDIATE`` transaction (so
read-merge-write of a batch cannot interleave with another writer's) and connections wait up to
``busy_timeout`` for the lock instead of failing.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
import sqlite3
import threading
import time
from itertools import chain
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import orjson

from flowcept._files import prepare_store_file
from flowcept.errors import QueryError, StoreError
from flowcept.store.merge import merge_record
from flowcept.records import KINDS
from flowcept.store import COLLECTIONS, group_by_collection
from flowcept.store._filters import (SQLITE, check_collection, check_limit, compile_aggregate, compile_filter,
                                     compile_find, decode_docs, keyset_page, keyset_pages)
from flowcept.store.lineage import SQLITE_READY_TRIGGER as LINKS_READY
from flowcept.store.lineage import has_link_markers, refresh_statements
from flowcept.store.lineage import schema_statements as lineage_schema

__all__ = ["SqliteStore"]

_log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 120_000
# Ids per "SELECT ... WHERE id IN (...)": far below SQLITE_MAX_VARIABLE_NUMBER (32766 since 3.32).
_CHUNK = 5_000
# Queries by workflow, parent, activity, status and start time are indexed. Each index costs about 0.4 us of SQLite
# work per inserted task on the reference machine (a JSON extraction and a B-tree insert; bench/bench_core.py's floor),
# paid on the flusher thread: with the primary key, the bound of the flat-out capture figures (docs/performance.md).
_TASK_INDEXES = ("workflow_id", "parent_task_id", "activity_id", "status", "started_at")
_ABANDONED: list[sqlite3.Connection] = []  # connections inherited through fork, never touched again
_COLLECTION_INDEXES = {"tasks": _TASK_INDEXES, "workflows": ("campaign_id",), "agents": ("workflow_id",)}


#: Longest a ``$regex`` may run against one value (seconds) before the query fails with QueryError. Python's own
#: engine cannot be interrupted (a pattern like ``(a|aa)+$`` holds the GIL for minutes on a 40-character value);
#: the ``regex`` module's matcher checks a timeout and releases the GIL while it runs.
REGEX_TIMEOUT_S = 0.1
_regex_state = threading.local()  # .timed_out: the pattern that ran out of time in this thread's current query


@functools.lru_cache(maxsize=256)
def _compiled(pattern: str):
    import regex

    return regex.compile(pattern, flags=regex.VERSION0)


def _regexp(pattern: str | None, value: Any) -> bool | None:
    if pattern is None or value is None:
        return None
    try:
        return _compiled(pattern).search(str(value), timeout=REGEX_TIMEOUT_S, concurrent=True) is not None
    except TimeoutError:
        _regex_state.timed_out = pattern
        raise


def _encoded_upsert(table: str, kind: str | None, id_key: str) -> str:
    # New ids are inserted as they come; an id already stored merges in flowcept_merge (the merge rules of
    # flowcept.store.merge, the same as every other store and reader), called only for those rows. With kind None
    # (a batch known to hold only this kind) the type test is left out: one JSON lookup less per record.
    kind_test = f"json_extract(value, '$.type') = '{kind}' AND " if kind is not None else ""
    return (
        f"INSERT INTO {table} (id, doc) SELECT json_extract(value, '$.{id_key}'), value FROM json_each(?) "
        f"WHERE {kind_test}json_extract(value, '$.{id_key}') IS NOT NULL "
        f"ON CONFLICT(id) DO UPDATE SET doc = flowcept_merge(doc, excluded.doc)"
    )


def _merge_json(old: str, new: str) -> str:
    return orjson.dumps(merge_record(orjson.loads(old), orjson.loads(new)), option=orjson.OPT_NON_STR_KEYS).decode()


_ENCODED_UPSERTS = tuple((re.compile(rb'"type"\s*:\s*"' + kind.encode() + rb'"'), _encoded_upsert(table, kind, id_key))
                         for kind, (table, id_key) in KINDS.items())
#: Per kind: (the upsert for a batch of that kind only, the upsert that picks that kind out of a mixed batch).
_UPSERTS_BY_KIND = {kind: (_encoded_upsert(table, None, id_key), _encoded_upsert(table, kind, id_key))
                    for kind, (table, id_key) in KINDS.items()}


@functools.lru_cache(maxsize=32)
def _values_upsert(table: str, rows: int) -> str:
    # CAST: the encoded records are bound as bytes (BLOB); the doc column holds JSON text.
    return (f"INSERT INTO {table} (id, doc) VALUES {', '.join(['(?, CAST(? AS TEXT))'] * rows)} "
            f"ON CONFLICT(id) DO UPDATE SET doc = flowcept_merge(doc, excluded.doc)")


def _rows_per_statement(conn: sqlite3.Connection) -> int:
    getlimit = getattr(conn, "getlimit", None)  # Python 3.11+; older SQLite builds allow 999 parameters
    limit = getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) if getlimit is not None else 999
    return max(1, limit // 2)


# Re-derive the links of the tasks a batch wrote (flowcept.store.lineage), in the upsert's transaction.
_REFRESH_FROM_RECORDS = refresh_statements("sqlite", "records")
_REFRESH_FROM_IDS = refresh_statements("sqlite", "ids")


def _retry_locked(step, deadline_secs: float = BUSY_TIMEOUT_MS / 1000):
    # Switching to WAL (and creating the schema) can fail with "database is locked" at once, without waiting on
    # the busy handler, while another connection opens the same new file: retry with backoff instead.
    delay, deadline = 0.005, time.monotonic() + deadline_secs
    while True:
        try:
            return step()
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.2)


def _dumps(record: dict) -> str:
    return orjson.dumps(record, option=orjson.OPT_NON_STR_KEYS).decode()


class SqliteStore:
    """A :class:`flowcept.store.Store` on one SQLite file.

    Connections are opened lazily, one per thread, and reopened in a forked child (a connection must never cross
    a fork). Safe for several threads and several processes on one file.

    Args:
        path: the database file; parent folders are created.

    Raises:
        StoreError: on first use, when the file cannot be opened or written (the message names the path).
    """

    #: The SQL dialect of the filter compiler (:mod:`flowcept.store._filters`), for modules that build SQL.
    dialect = SQLITE

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path).expanduser()
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[sqlite3.Connection] = []
        self._pid = os.getpid()
        self._closed = False
        self._schema_ready = False

    # ------------------------------------------------------------------------------------------ connections

    def __repr__(self) -> str:
        return f"SqliteStore({str(self.path)!r})"

    def __enter__(self) -> "SqliteStore":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @contextlib.contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        _regex_state.timed_out = None
        try:
            yield
        except QueryError:
            raise
        except (sqlite3.Error, OSError) as exc:
            pattern = getattr(_regex_state, "timed_out", None)
            if pattern is not None:
                _regex_state.timed_out = None
                raise QueryError(f"$regex {pattern.removeprefix('(?i)')!r} ran longer than {REGEX_TIMEOUT_S} s on "
                                 "one value (catastrophic backtracking?); simplify the pattern, e.g. anchor it or "
                                 "avoid nested repetition such as (a+)+") from exc
            raise StoreError(f"SQLite store {self.path}: {action} failed: {exc}") from exc

    def _conn(self) -> sqlite3.Connection:
        if self._closed:
            raise StoreError(f"SQLite store {self.path} is closed")
        pid = os.getpid()
        if pid != self._pid:
            # Forked child: the parent's connections are not ours. Keep them referenced but unused: letting them be
            # garbage-collected would run sqlite3_close() on the parent's file state from this process.
            with self._lock:
                if pid != self._pid:
                    _ABANDONED.extend(self._connections)
                    self._local = threading.local()
                    self._connections = []
                    self._pid = pid
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._open()
            self._local.conn = conn
        return conn

    def _open(self) -> sqlite3.Connection:
        with self._errors("opening the database"):
            if not self._schema_ready:
                prepare_store_file(self.path)  # private: 0700 folder, 0600 file (and so -wal, -shm)
            if self.path.exists() and not os.access(self.path, os.W_OK):
                raise StoreError(f"SQLite store {self.path}: the file is not writable")
            conn = sqlite3.connect(str(self.path), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                                   check_same_thread=False)
            try:
                conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
                conn.create_function("REGEXP", 2, _regexp, deterministic=True)
                conn.create_function("flowcept_merge", 2, _merge_json, deterministic=True)
                # A new file gets 16 KiB pages (no effect on an existing one): fewer page splits and WAL frames per
                # inserted record (bench/bench_sqlite_floor.py measures it).
                conn.execute("PRAGMA page_size = 16384")
                _retry_locked(lambda: conn.execute("PRAGMA journal_mode = WAL"))
                conn.execute("PRAGMA synchronous = NORMAL")
                if not self._schema_ready:
                    _retry_locked(lambda: self._create_schema(conn))
            except BaseException:
                conn.close()
                raise
        with self._lock:
            self._connections.append(conn)
        return conn

    def _create_schema(self, conn: sqlite3.Connection) -> None:
        statements = []
        for table in COLLECTIONS:
            statements.append(f"CREATE TABLE IF NOT EXISTS {table} (id TEXT PRIMARY KEY, doc TEXT NOT NULL)")
            for field in _COLLECTION_INDEXES[table]:
                statements.append(f"CREATE INDEX IF NOT EXISTS {table}_{field} ON {table} "
                                  f"(json_extract(doc, {SQLITE.json_path((field,))}))")
        conn.execute("BEGIN IMMEDIATE")
        try:
            for stmt in statements:
                conn.execute(stmt)
            if conn.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (LINKS_READY,)).fetchone() is None:
                for stmt in lineage_schema("sqlite"):  # links for lineage, (re)built from the stored tasks
                    conn.execute(stmt)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        self._schema_ready = True

    def close(self) -> None:
        """Close every connection this process opened; idempotent."""
        with self._lock:
            conns, self._connections = self._connections, []
            self._closed = True
        if os.getpid() != self._pid:
            _ABANDONED.extend(conns)  # the parent's: never closed (nor garbage-collected) in this child
            return
        for conn in conns:
            with contextlib.suppress(sqlite3.Error):
                conn.close()
        self._local = threading.local()

    # ------------------------------------------------------------------------------------------ writes

    def upsert(self, records: Sequence[dict]) -> int:
        """Insert or merge records by id in one transaction; see :meth:`flowcept.store.Store.upsert`."""
        by_collection = group_by_collection(records)
        if not by_collection:
            return 0
        with self._write_transaction() as conn:
            return sum(self._upsert_collection(conn, collection, recs) for collection, recs in by_collection.items())

    def upsert_encoded(self, batch) -> int:
        """Insert or merge an encoded batch (:class:`flowcept.buffer.EncodedBatch`) in one transaction.

        The whole batch goes to SQLite as one JSON array and is split and inserted there (``json_each``), so the
        work runs outside the GIL and capture threads keep running meanwhile. Ids already stored merge by
        :func:`flowcept.store.merge.merge_record`; records of one batch sharing an id merge in order.
        """
        ids, parts = getattr(batch, "ids", None), getattr(batch, "parts", None)
        if ids is not None and parts is not None:
            return self._upsert_parts(batch, ids, parts)
        array = batch.array()
        kinds = getattr(batch, "kinds", None)
        if kinds is not None:  # encoded here: the kinds are known, no search through the bytes
            only = len(kinds) == 1
            statements = [_UPSERTS_BY_KIND[kind][0 if only else 1] for kind in kinds if kind in _UPSERTS_BY_KIND]
        else:  # an array from elsewhere (a keeper's stream): skip kinds its bytes cannot contain
            statements = [stmt for marker, stmt in _ENCODED_UPSERTS if marker.search(array)]
        with self._write_transaction() as conn:
            # Each statement scans the whole array.
            written = sum(conn.execute(stmt, (array,)).rowcount for stmt in statements)
            if has_link_markers(array):
                for stmt in _REFRESH_FROM_RECORDS:
                    conn.execute(stmt, (array,))
            return written

    def _upsert_parts(self, batch, ids: list[str], parts: list[bytes]) -> int:
        """A batch of one kind whose ids are known: its encoded records bound as they are, ``(id, doc)`` per row of
        one multi-row ``INSERT`` (no JSON parsing or re-rendering in SQLite: about a sixth less work per record
        than splitting the array, bench/bench_core.py's floor). Binding runs in C, one statement per chunk."""
        (kind,) = batch.kinds
        table = KINDS[kind][0]
        written = 0
        links = kind == "task" and has_link_markers(batch.lines(drop_data=False))
        conn = self._conn()
        step = _rows_per_statement(conn)
        if not links and len(ids) <= step:
            # One statement is one transaction (autocommit): one GIL release and reacquisition for the batch.
            with self._errors("upsert"):
                rows = list(chain.from_iterable(zip(ids, parts)))
                return conn.execute(_values_upsert(table, len(ids)), rows).rowcount
        with self._write_transaction() as conn:
            for start in range(0, len(ids), step):
                rows = zip(ids[start:start + step], parts[start:start + step])
                written += conn.execute(_values_upsert(table, min(step, len(ids) - start)),
                                        list(chain.from_iterable(rows))).rowcount
            if links:
                array = batch.array()
                for stmt in _REFRESH_FROM_RECORDS:
                    conn.execute(stmt, (array,))
        return written

    @contextlib.contextmanager
    def _write_transaction(self) -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` write transaction: commit on success, roll back on any error."""
        conn = self._conn()
        with self._errors("upsert"):
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise

    @staticmethod
    def _upsert_collection(conn: sqlite3.Connection, table: str, records: list[dict]) -> int:
        id_key = COLLECTIONS[table]
        ids = [str(r[id_key]) for r in records]
        existing: dict[str, str] = {}
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start:start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            existing.update(conn.execute(f"SELECT id, doc FROM {table} WHERE id IN ({marks})", chunk))
        rows = []
        for rid, record in zip(ids, records):
            old = existing.get(rid)
            if old is not None:
                record = merge_record(orjson.loads(old), record)
            rows.append((rid, _dumps(record)))
        conn.executemany(f"INSERT INTO {table} (id, doc) VALUES (?, ?) "
                         f"ON CONFLICT(id) DO UPDATE SET doc = excluded.doc", rows)
        if table == "tasks":
            linked = [rid for rid, text in rows if has_link_markers(text)]
            if linked:
                for stmt in _REFRESH_FROM_IDS:
                    conn.execute(stmt, (_dumps(linked),))
        return len(rows)

    def delete(self, collection: str, filter: Mapping) -> int:
        """Delete matching records; ``{}`` deletes all. Returns the count deleted."""
        table = check_collection(collection)
        if filter is None:
            raise QueryError("delete needs a filter; pass {} to delete every record")
        where, params = compile_filter(filter, SQLITE)
        conn = self._conn()
        with self._errors("delete"):
            cur = conn.execute(f"DELETE FROM {table} WHERE {where}", params)
            return cur.rowcount

    # ------------------------------------------------------------------------------------------ reads

    def find(self, collection: str, filter: Mapping | None = None, projection: Any = None, sort: Any = None,
             limit: int = 0) -> list[dict]:
        """Matching records, projected, sorted, at most ``limit`` (0 = all)."""
        sql, params = compile_find(collection, filter, sort, limit, SQLITE)
        conn = self._conn()
        with self._errors("find"):
            rows = conn.execute(sql, params).fetchall()
        return decode_docs(rows, projection)

    def find_pages(self, collection: str, filter: Mapping | None = None,
                   page_size: int = 1000) -> Iterator[list[dict]]:
        """Matching records in pages ordered by rowid; see :meth:`flowcept.store.Store.find_pages`."""
        fetch, size = self._page_fetch(collection, filter, page_size)
        return keyset_pages(fetch, -1, size)

    def find_page(self, collection: str, filter: Mapping | None = None, after: Any = None,
                  page_size: int = 1000) -> tuple[list[dict], Any]:
        """One page in rowid order after ``after``; see :meth:`flowcept.store.Store.find_page`."""
        fetch, size = self._page_fetch(collection, filter, page_size)
        if after is not None and not isinstance(after, int):
            raise QueryError(f"a page key of this store is an integer, got {after!r}")
        return keyset_page(fetch, -1 if after is None else after, size)

    def _page_fetch(self, collection: str, filter: Mapping | None, page_size: int):
        table = check_collection(collection)
        where, params = compile_filter(filter, SQLITE)
        size = check_limit(page_size) or 1000
        # rowid is the last column of every index, so "<indexed field> = ? AND rowid > ?" is one index range scan.
        sql = f"SELECT rowid, doc FROM {table} WHERE {where} AND rowid > ? ORDER BY rowid LIMIT {size}"

        def fetch(after: int) -> list:
            conn = self._conn()
            with self._errors("find"):
                return conn.execute(sql, params + [after]).fetchall()

        return fetch, size

    def count(self, collection: str, filter: Mapping | None = None) -> int:
        """How many records match."""
        table = check_collection(collection)
        where, params = compile_filter(filter, SQLITE)
        conn = self._conn()
        with self._errors("count"):
            return conn.execute(f"SELECT COUNT(*) FROM {table} WHERE {where}", params).fetchone()[0]

    def aggregate(self, collection: str, filter: Mapping | None = None, group_by: Any = None,
                  aggregations: Sequence = ()) -> list[dict]:
        """Grouped avg/sum/min/max/count; see :meth:`flowcept.store.Store.aggregate`."""
        table = check_collection(collection)
        where, wparams = compile_filter(filter, SQLITE)
        select, sparams, group_sql, decode, sort_key = compile_aggregate(group_by, aggregations, SQLITE)
        conn = self._conn()
        with self._errors("aggregate"):
            rows = conn.execute(f"SELECT {select} FROM {table} WHERE {where}{group_sql}", sparams + wparams).fetchall()
        out = [rec for rec in map(decode, rows) if rec is not None]
        if sort_key is not None:
            out.sort(key=sort_key)
        return out

    def run_sql(self, steps: Sequence[tuple[str, Sequence]], batch_size: int = 1_000) -> Iterator[tuple]:
        """Run SQL statements in order on one connection and yield the rows of the last one, ``batch_size`` at a time
        (lazily: nothing runs before the first row is asked for).

        For the query modules (lineage, analytics, dumps) that build read-only SQL for :attr:`dialect`; earlier
        steps may fill ``temp`` tables. Raises :class:`StoreError` (or QueryError) like the other methods.
        """
        conn = self._conn()
        with self._errors("query"):
            for sql, params in steps[:-1]:
                conn.execute(sql, params)
            cur = conn.execute(*steps[-1])
        try:
            while True:
                with self._errors("query"):
                    rows = cur.fetchmany(batch_size)
                if not rows:
                    return
                yield from rows
        finally:
            cur.close()
