"""PostgreSQL store: one ``(id TEXT PRIMARY KEY, doc JSONB)`` table per collection, merged by a SQL function.

::

    upsert(records)          coalesce by id in Python ─┐
    upsert_encoded(batch)    one JSON array ───────────┼─▶ INSERT ... SELECT FROM jsonb_array_elements(%s::jsonb)
                                                       │   ON CONFLICT (id) DO UPDATE SET doc = flowcept_merge(...)
                                                       ▼   one statement per collection, one transaction per batch
    find / count / aggregate / delete ── store/_filters.py (POSTGRES dialect, top-level id/status fields inlined
                                         so the expression indexes on ``doc ->> 'field'`` serve them)

The schema (tables, indexes, the ``flowcept_merge`` function and ``flowcept_merge_agg`` aggregate) is created on
first use under a transaction-level advisory lock, so several processes starting at once do not race.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from typing import Any, Callable, Iterator, Mapping, Sequence, TypeVar

import orjson

from flowcept.errors import BackendUnavailableError, QueryError, StoreError
from flowcept.records import KIND_OF_COLLECTION
from flowcept.store import COLLECTIONS, group_by_collection
from flowcept.store._filters import (SCALAR_FIELDS, PostgresDialect, check_collection, check_limit, compile_aggregate, compile_filter, compile_find, decode_docs, keyset_page, keyset_pages)
from flowcept.store.lineage import PG_READY_FUNCTION as LINKS_READY
from flowcept.store.lineage import has_link_markers, refresh_statements
from flowcept.store.lineage import schema_statements as lineage_schema

try:
    import psycopg
    from psycopg.conninfo import conninfo_to_dict
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise BackendUnavailableError("PostgreSQL store", "postgres") from exc

__all__ = ["PostgresStore"]

_log = logging.getLogger(__name__)
_T = TypeVar("_T")

CONNECT_TIMEOUT_S = 10
# pg_advisory_xact_lock key for schema creation: any constant shared by every flowcept process ("fcpt").
_SCHEMA_LOCK = 0x66637074
_ABANDONED: list[Any] = []  # connections inherited through fork: never closed here (that would end the parent's)

#: Expression indexes per collection (``doc ->> field``); top-level equality filters on these fields use them.
INDEXED_FIELDS: dict[str, tuple[str, ...]] = {
    "tasks": ("workflow_id", "campaign_id", "parent_task_id", "activity_id", "status"),
    "workflows": ("workflow_id", "campaign_id"),
    "agents": ("workflow_id",),
}
_KIND = KIND_OF_COLLECTION

# Merge rules of flowcept.store.merge.merge_record, in PL/pgSQL (it caches its plans: about 2x faster per merged
# row than a LANGUAGE sql function here).
_MERGE_FUNCTIONS = (
    # Only object and null values of ``new`` need work: nulls are dropped ("no news"), objects merge into objects.
    """CREATE OR REPLACE FUNCTION flowcept_merge_dicts(old jsonb, new jsonb) RETURNS jsonb
    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
    DECLARE k text; v jsonb; patch jsonb := new;
    BEGIN
      FOR k, v IN SELECT key, value FROM jsonb_each(new) WHERE jsonb_typeof(value) IN ('object', 'null') LOOP
        IF jsonb_typeof(v) = 'null' THEN
          patch := patch - k;
        ELSIF jsonb_typeof(old -> k) = 'object' THEN
          patch := jsonb_set(patch, ARRAY[k], flowcept_merge_dicts(old -> k, v));
        END IF;
      END LOOP;
      RETURN old || patch;
    END $$""",
    # A terminal status stays against a later non-terminal one; the stored type stays.
    """CREATE OR REPLACE FUNCTION flowcept_merge(old jsonb, new jsonb) RETURNS jsonb
    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
    DECLARE merged jsonb := flowcept_merge_dicts(old, new);
    BEGIN
      IF (old ->> 'status') IN ('FINISHED', 'ERROR') AND jsonb_typeof(new -> 'status') <> 'null'
         AND (new ->> 'status') NOT IN ('FINISHED', 'ERROR') THEN
        merged := jsonb_set(merged, '{status}', old -> 'status');
      END IF;
      IF jsonb_typeof(old -> 'type') <> 'null' AND (new -> 'type') IS DISTINCT FROM (old -> 'type') THEN
        merged := jsonb_set(merged, '{type}', old -> 'type');
      END IF;
      RETURN merged;
    END $$""",
    # Strict transition function, no initial state: the first message of a group becomes the state as is.
    "CREATE OR REPLACE AGGREGATE flowcept_merge_agg(jsonb) (SFUNC = flowcept_merge, STYPE = jsonb)",
)


def _upsert_sql(table: str) -> str:
    # Rows are unique by id here (coalesced in Python): PostgreSQL refuses to update one row twice in a statement.
    id_key = COLLECTIONS[table]
    return (f"INSERT INTO {table} AS t (id, doc) SELECT e ->> '{id_key}', e FROM jsonb_array_elements(%s::jsonb) "
            f"AS a(e) ON CONFLICT (id) DO UPDATE SET doc = flowcept_merge(t.doc, EXCLUDED.doc)")


# The array is validated as ``json`` (a lexer pass, no tree) and each element is parsed to jsonb on its own: about
# 25% cheaper than parsing the whole array to one jsonb value and copying each element out of it. OFFSET 0 keeps
# the cast from being inlined into every reference (it would run three times per element).
_ELEMENTS = ("(SELECT j::jsonb AS e{n} FROM json_array_elements(%s::json){ordinality} AS a(j{n}) OFFSET 0) AS s")


def _encoded_upsert_sql(table: str, grouped: bool = True) -> str:
    """The encoded-batch upsert into ``table``.

    ``grouped``: records of one batch sharing an id are merged in capture order by the aggregate before the upsert.
    Without it (the fast path) each record goes straight to ``ON CONFLICT``: the same result when the batch holds
    each id once, and PostgreSQL refuses the statement (cardinality violation) when it does not.
    """
    id_key = COLLECTIONS[table]
    where = f"WHERE e ->> 'type' = '{_KIND[table]}' AND e ->> '{id_key}' IS NOT NULL"
    if grouped:
        select = (f"SELECT e ->> '{id_key}', flowcept_merge_agg(e ORDER BY n) "
                  f"FROM {_ELEMENTS.format(n=', n', ordinality=' WITH ORDINALITY')} {where} GROUP BY 1")
    else:
        select = f"SELECT e ->> '{id_key}', e FROM {_ELEMENTS.format(n='', ordinality='')} {where}"
    return (f"INSERT INTO {table} AS t (id, doc) {select} "
            f"ON CONFLICT (id) DO UPDATE SET doc = flowcept_merge(t.doc, EXCLUDED.doc)")


# (marker, fast statement, grouped statement) per collection. Each statement parses the whole array, so a kind
# whose quoted name (``"task"``) is not in the bytes is skipped; a ``\u`` escape anywhere disables the skip (the
# name could be spelled with escapes).
_ENCODED_UPSERTS = tuple((f'"{_KIND[table]}"'.encode(), _encoded_upsert_sql(table, grouped=False),
                          _encoded_upsert_sql(table)) for table in COLLECTIONS)
_UPSERTS = {table: _upsert_sql(table) for table in COLLECTIONS}
# Errors caused by the query itself (a bad regular expression, one too complex to run): QueryError, not StoreError.
_QUERY_SQLSTATES = frozenset({"2201B", "54001", "2201X", "2201W"})
# Re-derive the links of the tasks a batch wrote (flowcept.store.lineage), in the upsert's transaction.
_REFRESH_FROM_RECORDS = refresh_statements("postgres", "records")
_REFRESH_FROM_IDS = refresh_statements("postgres", "ids")
#: After a batch with repeated ids, this many batches go straight to the grouped statements.
_GROUPED_BATCHES = 8


class _IndexedDialect(PostgresDialect):
    """The POSTGRES dialect with top-level scalar fields inlined as ``doc -> 'field'``.

    Equality on them compiles to ``(doc ->> 'field') = %s``, the expression the indexes are built on; the path is
    validated by the compiler (letters, digits, ``_``, ``-``), so inlining it is safe.
    """

    def field(self, path):
        if len(path) == 1 and path[0] in SCALAR_FIELDS:
            return {"x": f"(doc -> '{path[0]}')", "xp": [], "key": path[0]}
        return super().field(path)

    def cmp_string(self, o, op, value):
        key = o.get("key")
        if key is not None and op == "=":
            # Equality needs no COLLATE "C": deterministic collations compare equal strings byte-wise anyway.
            return f"((doc ->> '{key}') = %s AND jsonb_typeof(doc -> '{key}') = 'string')", [value]
        return super().cmp_string(o, op, value)

    def in_values(self, o, kind, values):
        key = o.get("key")
        if key is not None and kind == "string":
            return f"((doc ->> '{key}') = ANY(%s::text[]) AND jsonb_typeof(doc -> '{key}') = 'string')", [list(values)]
        return super().in_values(o, kind, values)


DIALECT = _IndexedDialect()


def _dumps(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def _strip_nul(value: Any) -> Any:
    # jsonb cannot hold U+0000; such characters become U+FFFD (only on the slow path after the server refused).
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {_strip_nul(k): _strip_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_strip_nul(v) for v in value]
    return value


class PostgresStore:
    """A :class:`flowcept.store.Store` on a PostgreSQL database.

    Connections open lazily, one per thread (autocommit; each upsert batch is one explicit transaction), and are
    reopened in a forked child. A connection found broken (server restarted, network cut) is dropped: the call
    that finds it retries once on a fresh connection and raises :class:`StoreError` if that fails too, and the
    next call reconnects again. Upserts are idempotent, so the retry cannot double anything.

    Args:
        dsn: a libpq connection string or ``postgresql://`` URI (see ``databases.postgres`` in the settings).
        connect_timeout: seconds to wait for a connection unless the DSN sets ``connect_timeout``.

    Raises:
        StoreError: on first use, when the server cannot be reached (the message names host and port).
    """

    #: The SQL dialect of the filter compiler (:mod:`flowcept.store._filters`), for modules that build SQL.
    dialect = DIALECT

    def __init__(self, dsn: str, connect_timeout: float = CONNECT_TIMEOUT_S):
        self.dsn = dsn
        try:
            info = conninfo_to_dict(dsn)
        except psycopg.Error as exc:
            raise StoreError(f"PostgreSQL store: invalid connection string: {exc}") from exc
        self._connect_kwargs: dict[str, Any] = {}
        if "connect_timeout" not in info:
            self._connect_kwargs["connect_timeout"] = max(1, int(connect_timeout))
        host = info.get("host") or info.get("hostaddr") or "localhost"
        self.where = f"{host}:{info.get('port') or 5432}/{info.get('dbname') or info.get('user') or ''}"
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[tuple[threading.Thread, Any]] = []
        self._pid = os.getpid()
        self._closed = False
        self._schema_ready = False
        self._grouped_batches = 0  # batches left to send straight to the grouped statements

    def __repr__(self) -> str:
        return f"PostgresStore({self.where!r})"

    def __enter__(self) -> "PostgresStore":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ------------------------------------------------------------------------------------------ connections

    def _fail(self, action: str, exc: BaseException) -> StoreError:
        if isinstance(exc, psycopg.OperationalError):
            # libpq's message spans lines and carries its own hint; keep its first line.
            detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            return StoreError(f"PostgreSQL store at {self.where}: {action} failed, server unreachable ({detail}). "
                              "Is the server running? Check databases.postgres in the settings "
                              "(FLOWCEPT_POSTGRES_URI, FLOWCEPT_POSTGRES_HOST, FLOWCEPT_POSTGRES_PORT).")
        sqlstate = getattr(exc, "sqlstate", None)
        code = f" [{sqlstate}]" if sqlstate else ""
        if sqlstate in _QUERY_SQLSTATES:
            return QueryError(f"PostgreSQL store at {self.where}: the query was refused{code}: {exc}")
        return StoreError(f"PostgreSQL store at {self.where}: {action} failed{code}: {exc}")

    def _conn(self):
        if self._closed:
            raise StoreError(f"PostgreSQL store at {self.where} is closed")
        pid = os.getpid()
        if pid != self._pid:
            # Forked child: the parent's sockets are shared with it. Closing them here would send a Terminate
            # message on the parent's session, so keep them referenced and unused (psycopg's own finalizer skips
            # connections made in another process).
            with self._lock:
                if pid != self._pid:
                    _ABANDONED.extend(conn for _, conn in self._connections)
                    self._local = threading.local()
                    self._connections = []
                    self._pid = pid
        conn = getattr(self._local, "conn", None)
        if conn is None or conn.closed:
            conn = self._open()
            self._local.conn = conn
        return conn

    def _open(self):
        try:
            conn = psycopg.connect(self.dsn, autocommit=True, **self._connect_kwargs)
        except psycopg.Error as exc:
            raise self._fail("connecting", exc) from exc
        try:
            if not self._schema_ready:
                self._create_schema(conn)
        except psycopg.Error as exc:
            conn.close()
            raise self._fail("creating the schema", exc) from exc
        with self._lock:
            # Forget connections of threads that ended (their thread-local slot is gone).
            alive = []
            for thread, old in self._connections:
                if thread.is_alive():
                    alive.append((thread, old))
                else:
                    with contextlib.suppress(Exception):
                        old.close()
            alive.append((threading.current_thread(), conn))
            self._connections = alive
        return conn

    def _drop(self, conn) -> None:
        if getattr(self._local, "conn", None) is conn:
            self._local.conn = None
        with self._lock:
            self._connections = [(t, c) for t, c in self._connections if c is not conn]
        with contextlib.suppress(Exception):
            conn.close()

    def _create_schema(self, conn) -> None:
        names = [f"{table}_{field}" for table, fields in INDEXED_FIELDS.items() for field in fields]
        check = ("SELECT to_regprocedure('flowcept_merge_agg(jsonb)') IS NOT NULL AND "
                 f"to_regprocedure('{LINKS_READY}') IS NOT NULL AND "
                 + " AND ".join("to_regclass(%s) IS NOT NULL" for _ in names))
        if not conn.execute(check, names).fetchone()[0]:
            with conn.transaction():
                # Concurrent CREATE ... IF NOT EXISTS can still collide in the catalogs: serialize the creators.
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
                if not conn.execute(check, names).fetchone()[0]:  # another process may have finished meanwhile
                    for stmt in _MERGE_FUNCTIONS:
                        conn.execute(stmt)
                    for table, fields in INDEXED_FIELDS.items():
                        conn.execute(f"CREATE TABLE IF NOT EXISTS {table} (id TEXT PRIMARY KEY, doc JSONB NOT NULL)")
                        for field in fields:
                            conn.execute(f"CREATE INDEX IF NOT EXISTS {table}_{field} ON {table} "
                                         f"((doc ->> '{field}'))")
                    for stmt in lineage_schema("postgres"):  # links for lineage, rebuilt from the stored tasks
                        conn.execute(stmt)
        self._schema_ready = True

    def _run(self, action: str, work: Callable[[Any], _T]) -> _T:
        """Run ``work(conn)``; on a broken connection reconnect and retry once, then raise StoreError."""
        fresh = getattr(self._local, "conn", None) is None or self._pid != os.getpid()
        conn = self._conn()
        try:
            return work(conn)
        except psycopg.Error as exc:
            broken = conn.broken or conn.closed or isinstance(exc, psycopg.OperationalError)
            if not broken:
                raise self._fail(action, exc) from exc
            self._drop(conn)
            if fresh:
                raise self._fail(action, exc) from exc
            _log.info("PostgreSQL connection to %s lost (%s); reconnecting", self.where, exc)
        conn = self._conn()
        try:
            return work(conn)
        except psycopg.Error as exc:
            if conn.broken or conn.closed or isinstance(exc, psycopg.OperationalError):
                self._drop(conn)
            raise self._fail(action, exc) from exc

    def close(self) -> None:
        """Close every connection this process opened; idempotent."""
        with self._lock:
            conns, self._connections = self._connections, []
            self._closed = True
        if os.getpid() != self._pid:
            _ABANDONED.extend(conns)  # the parent's sockets: never closed (nor garbage-collected) in this child
            return
        for _, conn in conns:
            with contextlib.suppress(Exception):
                conn.close()
        self._local = threading.local()

    # ------------------------------------------------------------------------------------------ writes

    def upsert(self, records: Sequence[dict]) -> int:
        """Insert or merge records by id in one transaction; see :meth:`flowcept.store.Store.upsert`."""
        by_collection = group_by_collection(records)
        if not by_collection:
            return 0
        arrays = {table: _dumps(recs) for table, recs in by_collection.items()}

        def work(conn) -> int:
            with conn.transaction():
                written = sum(conn.execute(_UPSERTS[table], (array,)).rowcount for table, array in arrays.items())
                if "tasks" in arrays and has_link_markers(arrays["tasks"]):
                    ids = _dumps([str(r["task_id"]) for r in by_collection["tasks"]])
                    for stmt in _REFRESH_FROM_IDS:
                        conn.execute(stmt, (ids,))
                return written

        try:
            return self._run("upsert", work)
        except StoreError as exc:
            if not _is_nul_error(exc):
                raise
            arrays = {table: _dumps(_strip_nul(recs)) for table, recs in by_collection.items()}
            return self._run("upsert", work)

    def upsert_encoded(self, batch) -> int:
        """Insert or merge an encoded batch (:class:`flowcept.buffer.EncodedBatch`) in one transaction.

        The batch goes to the server as one JSON array; records sharing an id are merged there in capture order
        (``flowcept_merge_agg``) and then merged into the stored rows, so the work runs outside the GIL. Records
        are routed by their ``type``; those without their id key are skipped.
        """
        raw = batch.array()
        escaped = b"\\u" in raw
        kinds = [(fast, grouped) for marker, fast, grouped in _ENCODED_UPSERTS if escaped or marker in raw]
        if not kinds:
            return 0
        array = raw.decode()
        linked = has_link_markers(raw)

        def work(conn) -> int:
            with conn.transaction():
                written = self._upsert_kinds(conn, kinds, array)
                if linked:
                    for stmt in _REFRESH_FROM_RECORDS:
                        conn.execute(stmt, (array,))
                return written

        try:
            return self._run("upsert", work)
        except StoreError as exc:
            if not _is_nul_error(exc):
                raise
            array = _dumps(_strip_nul(batch.docs))
            return self._run("upsert", work)

    def _upsert_kinds(self, conn, kinds, array: str) -> int:
        if self._grouped_batches > 0:
            self._grouped_batches -= 1
            return sum(conn.execute(grouped, (array,)).rowcount for _, grouped in kinds)
        written = 0
        for fast, grouped in kinds:
            try:
                with conn.transaction():  # a savepoint: a refused fast statement leaves no trace
                    written += conn.execute(fast, (array,)).rowcount
            except psycopg.errors.CardinalityViolation:
                # Some id occurs twice in the batch: merge those records in order first.
                self._grouped_batches = _GROUPED_BATCHES
                written += conn.execute(grouped, (array,)).rowcount
        return written

    def delete(self, collection: str, filter: Mapping) -> int:
        """Delete matching records; ``{}`` deletes all. Returns the count deleted."""
        table = check_collection(collection)
        if filter is None:
            raise QueryError("delete needs a filter; pass {} to delete every record")
        where, params = compile_filter(filter, DIALECT)
        return self._run("delete", lambda conn: conn.execute(f"DELETE FROM {table} WHERE {where}", params).rowcount)

    # ------------------------------------------------------------------------------------------ reads

    def find(self, collection: str, filter: Mapping | None = None, projection: Any = None, sort: Any = None,
             limit: int = 0) -> list[dict]:
        """Matching records, projected, sorted, at most ``limit`` (0 = all)."""
        sql, params = compile_find(collection, filter, sort, limit, DIALECT, doc_expr="doc::text")
        return decode_docs(self._run("find", lambda conn: conn.execute(sql, params).fetchall()), projection)

    def find_pages(self, collection: str, filter: Mapping | None = None,
                   page_size: int = 1000) -> Iterator[list[dict]]:
        """Matching records in pages ordered by id; see :meth:`flowcept.store.Store.find_pages`."""
        fetch, size = self._page_fetch(collection, filter, page_size)
        return keyset_pages(fetch, "", size)  # every id sorts after the empty string

    def find_page(self, collection: str, filter: Mapping | None = None, after: Any = None,
                  page_size: int = 1000) -> tuple[list[dict], Any]:
        """One page in id order after ``after``; see :meth:`flowcept.store.Store.find_page`."""
        fetch, size = self._page_fetch(collection, filter, page_size)
        if after is not None and not isinstance(after, str):
            raise QueryError(f"a page key of this store is a string, got {after!r}")
        return keyset_page(fetch, "" if after is None else after, size)

    def _page_fetch(self, collection: str, filter: Mapping | None, page_size: int):
        table = check_collection(collection)
        where, params = compile_filter(filter, DIALECT)
        size = check_limit(page_size) or 1000
        sql = f"SELECT id, doc::text FROM {table} WHERE {where} AND id > %s ORDER BY id LIMIT {size}"
        return (lambda after: self._run("find", lambda conn: conn.execute(sql, params + [after]).fetchall())), size

    def count(self, collection: str, filter: Mapping | None = None) -> int:
        """How many records match."""
        table = check_collection(collection)
        where, params = compile_filter(filter, DIALECT)
        return self._run("count", lambda conn: conn.execute(f"SELECT COUNT(*) FROM {table} WHERE {where}",
                                                            params).fetchone()[0])

    def aggregate(self, collection: str, filter: Mapping | None = None, group_by: Any = None,
                  aggregations: Sequence = ()) -> list[dict]:
        """Grouped avg/sum/min/max/count; see :meth:`flowcept.store.Store.aggregate`."""
        table = check_collection(collection)
        where, wparams = compile_filter(filter, DIALECT)
        select, sparams, group_sql, decode, sort_key = compile_aggregate(group_by, aggregations, DIALECT)
        sql = f"SELECT {select} FROM {table} WHERE {where}{group_sql}"
        rows = self._run("aggregate", lambda conn: conn.execute(sql, sparams + wparams).fetchall())
        out = [rec for rec in map(decode, rows) if rec is not None]
        if sort_key is not None:
            out.sort(key=sort_key)
        return out

    def run_sql(self, steps: Sequence[tuple[str, Sequence]], batch_size: int = 1_000) -> Iterator[tuple]:
        """Run SQL statements in order in one transaction and yield the rows of the last one through a server-side
        cursor, ``batch_size`` at a time (lazily: nothing runs before the first row is asked for).

        For the query modules (lineage, analytics, dumps) that build read-only SQL for :attr:`dialect`; earlier
        steps may fill ``ON COMMIT DROP`` temp tables. Raises :class:`StoreError` (or QueryError).
        """
        conn = self._conn()
        name = f"flowcept_rows_{os.urandom(6).hex()}"  # a server-side cursor, unique on its connection
        try:
            with conn.transaction():
                for sql, params in steps[:-1]:
                    conn.execute(sql, params)
                with conn.cursor(name=name) as cur:
                    cur.execute(*steps[-1])
                    while True:
                        rows = cur.fetchmany(batch_size)
                        if not rows:
                            return
                        yield from rows
        except psycopg.Error as exc:
            if conn.broken or conn.closed:
                self._drop(conn)
            raise self._fail("query", exc) from exc

    # ------------------------------------------------------------------------------------------ diagnostics

    def ping(self) -> str:
        """Connect (creating the schema if needed) and return the server version, e.g. ``"15.2"``.

        Raises:
            StoreError: the server cannot be reached.
        """
        return self._run("connecting", lambda conn: conn.execute("SHOW server_version").fetchone()[0])

    def explain(self, collection: str, filter: Mapping | None = None) -> str:
        """The query plan of ``find(collection, filter)`` (for index checks)."""
        table = check_collection(collection)
        where, params = compile_filter(filter, DIALECT)
        rows = self._run("explain", lambda conn: conn.execute(f"EXPLAIN SELECT doc FROM {table} WHERE {where}",
                                                              params).fetchall())
        return "\n".join(row[0] for row in rows)


def _is_nul_error(exc: StoreError) -> bool:
    cause = exc.__cause__
    return getattr(cause, "sqlstate", None) in ("22P05", "22021") or "\\u0000" in str(cause)




