"""Versioned objects (models, datasets, artifacts) kept beside the records, in the same database.

::

    put(content) ──▶ small (<= INLINE_MAX): a row of object_data, in the metadata transaction
                 └─▶ large: the blob area, content-addressed by sha256, written and verified first
                       SQLite:     files beside the database file (<db>.blobs/, 0700; files 0600)
                       PostgreSQL: bytea chunks (object_blobs, object_chunks)
                 ──▶ then one transaction publishes the metadata: objects (latest) + object_history (every version)
    get / history / find ── metadata rows;  iter_content ── chunks, size and sha256 checked at the end

Backends register here by the class name of the record store they sit beside; ``make_object_store(store)``
builds the one for a :class:`flowcept.store.Store`.
"""

from __future__ import annotations

from typing import Any

from flowcept._registry import load_backend
from flowcept.store.objects._base import HASH_ALGO, INLINE_MAX, INLINE_MAX_FORCED, ObjectStore
from flowcept.store.objects._content import CHUNK_SIZE, open_source, spooled

__all__ = ["ObjectStore", "OBJECT_STORES", "make_object_store", "open_source", "spooled", "CHUNK_SIZE", "INLINE_MAX",
           "INLINE_MAX_FORCED", "HASH_ALGO"]

#: Record-store backend name -> "module:class" of the object store beside it, imported only when used.
OBJECT_STORES: dict[str, str] = {
    "sqlite": "flowcept.store.objects.sqlite:SqliteObjectStore",
    "postgres": "flowcept.store.objects.postgres:PostgresObjectStore",
}
# Record-store class name -> (backend name, the attribute holding its location).
_BESIDE = {"SqliteStore": ("sqlite", "path"), "PostgresStore": ("postgres", "dsn")}


def make_object_store(store: Any) -> ObjectStore:
    """The object store in the same database as ``store`` (same SQLite file, or same PostgreSQL DSN and schema).

    Raises:
        ConfigError: ``store`` is of a kind that cannot hold objects.
    """
    from flowcept.errors import ConfigError

    spec = _BESIDE.get(type(store).__name__)
    if spec is None:
        raise ConfigError(f"objects need the sqlite or postgres store, not {type(store).__name__}",
                          key="databases")
    name, attr = spec
    return load_backend(OBJECT_STORES, name, "object store", key="databases")(getattr(store, attr))
