"""Where records are kept: the ``Store`` seam, its backend registry and :func:`make_store`.

::

    flusher thread (embedded transport) ─┐
    keeper thread (redis transport)  ────┼─▶ Store.upsert(records)   merged by id (flowcept.store.merge)
    query API / CLI (caller's thread) ───┘   Store.find / count / aggregate / delete
                                                 │
                          ┌──────────────────────┴──────────────────────┐
                 SqliteStore (store/sqlite.py)                PostgresStore (store/postgres.py)
                 JSON1 over a ``doc`` TEXT column             JSONB ``doc`` column
                          └────── one filter compiler: store/_filters.py ──────┘

Collections are ``tasks``, ``workflows`` and ``agents``, keyed by ``task_id``, ``workflow_id`` and ``agent_id``.
"""

from __future__ import annotations

import logging
from typing import Any, Iterator, Mapping, Protocol, Sequence, runtime_checkable

_log = logging.getLogger("flowcept")

from flowcept._registry import load_backend

__all__ = ["Store", "SqlStore", "COLLECTIONS", "STORES", "collection_of", "make_store", "load_store_class"]

# The kinds, their collections and id keys are flowcept.records' facts; re-exported here for the stores.
from flowcept.records import COLLECTIONS, collection_of  # noqa: E402

#: Backend name (as in the settings' ``databases`` section) -> "module:class", imported only when chosen.
STORES: dict[str, str] = {
    "sqlite": "flowcept.store.sqlite:SqliteStore",
    "postgres": "flowcept.store.postgres:PostgresStore",
}


@runtime_checkable
class Store(Protocol):
    """A record database that speaks Mongo-style filters.

    Callers and threads:
        * ``upsert`` is called by the flusher thread (embedded transport) or the keeper thread (redis transport),
          and by the query API's ``insert_or_update_*`` on the caller's thread. It may block on I/O and locks
          (several processes may write one store).
        * ``find``, ``count``, ``aggregate`` and ``delete`` are called on the user's thread by the query API and the
          CLI. They may block.
        * ``close`` is called once by whoever made the store (controller, keeper, ``DBAPI.close``); it is idempotent.

    A store must be usable from several threads and, after ``fork``, from the child process (it reopens its
    connections). Every method raises :class:`flowcept.errors.StoreError` on database failure and
    :class:`flowcept.errors.QueryError` on a malformed filter, projection, sort or unknown collection; no
    library exception escapes.
    """

    def upsert(self, records: Sequence[dict]) -> int:
        """Insert or merge JSON-clean records by id (see :mod:`flowcept.store.merge`); returns how many were written.

        Records are routed by :func:`collection_of`; those it ignores, and those without their id key, are skipped.
        """
        ...

    def upsert_encoded(self, batch: Any) -> int:
        """The batch fast path: ``batch`` is a :class:`flowcept.buffer.EncodedBatch` (one JSON array), merged by id
        as :meth:`upsert` does, without decoding it in Python where the database can; returns how many were written."""
        ...

    def find(self, collection: str, filter: Mapping | None = None, projection: Any = None, sort: Any = None,
             limit: int = 0) -> list[dict]:
        """Records of ``collection`` matching ``filter``, projected, sorted, at most ``limit`` (0 = all)."""
        ...

    def count(self, collection: str, filter: Mapping | None = None) -> int:
        """How many records of ``collection`` match ``filter``."""
        ...

    def find_pages(self, collection: str, filter: Mapping | None = None,
                   page_size: int = 1000) -> Iterator[list[dict]]:
        """Records of ``collection`` matching ``filter``, in pages of at most ``page_size``, in a stable key order.

        Keyset pagination: each page is one short indexed query that starts after the last key of the previous
        one, so reading a million records holds one page in memory and never rescans what was read (exports and
        reports stream with it). Records written meanwhile may or may not appear.
        """
        ...

    def find_page(self, collection: str, filter: Mapping | None = None, after: Any = None,
                  page_size: int = 1000) -> tuple[list[dict], Any]:
        """One page of :meth:`find_pages`: the records after the page key ``after`` (None: from the start), and
        the key to pass for the next page (None after the last page). Keys are opaque JSON scalars of the store
        (the web service puts them in its cursors); a key of the wrong kind is a ``QueryError``."""
        ...

    def aggregate(self, collection: str, filter: Mapping | None = None, group_by: Any = None,
                  aggregations: Sequence[tuple[str, str]] = ()) -> list[dict]:
        """Group matching records by ``group_by`` and compute ``(op, field)`` aggregations (avg/sum/min/max/count).

        Each output dict holds the group key field(s) and ``<op>_<field with dots replaced by _>``.
        """
        ...

    def delete(self, collection: str, filter: Mapping) -> int:
        """Delete the records matching ``filter`` (``{}`` deletes all); returns how many were deleted."""
        ...

    def close(self) -> None:
        """Release connections; idempotent."""
        ...


@runtime_checkable
class SqlStore(Store, Protocol):
    """A :class:`Store` that also runs SQL built for its dialect: what lineage, analytics and dumps
    (:mod:`flowcept.query`) need. Both backends are SqlStores.

    ``run_sql`` is called on the caller's thread; it is lazy (nothing runs before the first row is asked for) and
    raises StoreError/QueryError like the other methods.
    """

    #: The filter compiler's dialect object (:mod:`flowcept.store._filters`); ``dialect.name`` is "sqlite" or
    #: "postgres".
    dialect: Any

    def run_sql(self, steps: Sequence[tuple[str, Sequence]], batch_size: int = 1_000) -> Iterator[tuple]:
        """Run read-only statements in order on one connection and yield the rows of the last, streamed."""
        ...


def load_store_class(name: str) -> type:
    """Import the store class registered under ``name`` (see :func:`flowcept._registry.load_backend`)."""
    return load_backend(STORES, name, "store", key="databases")


def group_by_collection(records: Sequence[dict]) -> dict[str, list[dict]]:
    """The records of one batch merged by id (:func:`flowcept.store.merge.coalesce`) and grouped by collection;
    records of no collection (objects, control messages) or without their id are left out."""
    from flowcept.store.merge import coalesce

    grouped: dict[str, list[dict]] = {}
    for record in coalesce(records):
        collection = collection_of(record)
        if collection is None:
            continue
        if record.get(COLLECTIONS[collection]) is None:
            _log.debug("skipping a %s record without %s", collection, COLLECTIONS[collection])
            continue
        grouped.setdefault(collection, []).append(record)
    return grouped


def make_store(settings: Any, for_reading: bool = False) -> Store | None:
    """Build the store the settings enable, or None.

    None when no database is enabled, or (unless ``for_reading``: queries still read what an earlier online run
    stored) when ``project.db_flush_mode`` is ``"offline"``. PostgreSQL
    (``databases.postgres.enabled``, ``.dsn``) is preferred over SQLite (``databases.sqlite.enabled``, ``.path``).

    Args:
        settings: a :class:`flowcept.settings.Settings`.

    Returns:
        An open store, or None.

    Raises:
        BackendUnavailableError: the chosen backend's library is not installed.
        StoreError: the database cannot be opened.
    """
    project = getattr(settings, "project", None)
    if not for_reading and project is not None and getattr(project, "db_flush_mode", None) == "offline":
        return None
    databases = getattr(settings, "databases", None)
    if databases is None:
        return None
    postgres = getattr(databases, "postgres", None)
    if postgres is not None and getattr(postgres, "enabled", False):
        return load_store_class("postgres")(postgres.dsn)
    sqlite = getattr(databases, "sqlite", None)
    if sqlite is not None and getattr(sqlite, "enabled", False):
        return load_store_class("sqlite")(sqlite.path)
    return None
