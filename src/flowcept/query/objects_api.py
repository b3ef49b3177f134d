"""The object half of ``Flowcept.db`` (reference 3.4 blobs): save, version, find and load models, datasets and
artifacts, and link them to the tasks that generate and use them.

``DBAPI`` inherits :class:`ObjectsAPI`; ``Flowcept`` inherits :class:`FlowceptObjects` (the reference's static
``Flowcept.insert_or_update_*`` helpers, delegating to ``Flowcept.db``).

Lineage: an object saved with a ``task_id`` (default: the task running the call) is added to that task's
``generated`` as ``{"object:<object_id>": {"object_id", "version", "data_sha256"}}``; an object loaded inside a
running task is added to its ``used`` the same way. Both are task merge records (dict fields merge key-wise),
emitted through the running pipeline or, with none running, upserted into the store.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Iterator, Mapping

__all__ = ["ObjectsAPI", "FlowceptObjects"]

class ObjectsAPI:
    """Object methods of :class:`flowcept.query.api.DBAPI` (needs its ``store`` property)."""

    store: Any
    #: The reference's object collections, readable through ``DBAPI.query(collection=...)``.
    OBJECT_COLLECTIONS = ("objects", "object_history")

    @property
    def object_store(self):
        """The :class:`flowcept.store.objects.ObjectStore` in the same database as :attr:`store`."""
        store = self.store
        cached = getattr(self, "_objects_cache", None)
        if cached is None or cached[0] is not store:
            from flowcept.store.objects import make_object_store

            cached = (store, make_object_store(store))
            self._objects_cache = cached
        return cached[1]

    # ------------------------------------------------------------------------------------------ saving

    def insert_or_update_object(self, object: Any, object_id: str | None = None, task_id: str | None = None,
                                workflow_id: str | None = None, object_type: str | None = None,
                                custom_metadata: dict | None = None, save_data_in_collection: bool = False,
                                pickle: bool = False, control_version: bool = False,
                                tags: list | None = None) -> str:
        """Store ``object`` as a new object, or as the new content of ``object_id``.

        Args:
            object: the content: ``bytes``, a ``pathlib.Path`` (the file is streamed), a binary file object (read
                from its position, streamed), or any picklable object with ``pickle=True``.
            object_id: the object to create or update; a new uuid when None.
            task_id: the task that generated it (default: the task running this call, if any); the task's
                ``generated`` gets ``object:<object_id>``.
            workflow_id: default: the running workflow.
            object_type: semantic category (``ml_model``, ``dataset``, ``artifact``...).
            custom_metadata, tags: free metadata (None on an update keeps the stored value).
            save_data_in_collection: keep content up to 16 MiB inline in the database rather than the blob area.
            pickle: pickle ``object``; :meth:`get_blob_object` unpickles it.
            control_version: keep the previous version and add this one as ``version + 1``; without it an update
                replaces the latest version in place.

        Returns:
            The object id.

        Raises:
            TypeError: ``object`` cannot be stored as given (e.g. a ``str``; the message says what to pass).
            StoreError: the database or blob area failed (nothing is published then).
        """
        from flowcept.store.objects import INLINE_MAX, INLINE_MAX_FORCED, open_source

        object_id, fields = self._fields(object_id, task_id, workflow_id, object_type, custom_metadata, tags)
        with open_source(object, pickle) as reader:
            doc = self.object_store.put(reader, object_id, fields, control_version, pickle,
                                   INLINE_MAX_FORCED if save_data_in_collection else INLINE_MAX)
        self._announce(doc)
        return object_id

    def insert_or_update_ml_model(self, object: Any, object_id: str | None = None, task_id: str | None = None,
                                  workflow_id: str | None = None, custom_metadata: dict | None = None,
                                  save_data_in_collection: bool = False, pickle: bool = False,
                                  control_version: bool = False, tags: list | None = None) -> str:
        """:meth:`insert_or_update_object` with ``object_type="ml_model"``."""
        return self.insert_or_update_object(object, object_id, task_id, workflow_id, "ml_model", custom_metadata,
                                            save_data_in_collection, pickle, control_version, tags)

    def insert_or_update_dataset(self, object: Any, object_id: str | None = None, task_id: str | None = None,
                                 workflow_id: str | None = None, custom_metadata: dict | None = None,
                                 save_data_in_collection: bool = False, pickle: bool = False,
                                 control_version: bool = False, tags: list | None = None) -> str:
        """:meth:`insert_or_update_object` with ``object_type="dataset"``."""
        return self.insert_or_update_object(object, object_id, task_id, workflow_id, "dataset", custom_metadata,
                                            save_data_in_collection, pickle, control_version, tags)

    # The blob documentation's names for the same methods.
    save_or_update_object = insert_or_update_object
    save_or_update_ml_model = insert_or_update_ml_model
    save_or_update_dataset = insert_or_update_dataset

    def insert_or_update_torch_model(self, model: Any, object_id: str | None = None, task_id: str | None = None,
                                     workflow_id: str | None = None, custom_metadata: dict | None = None,
                                     control_version: bool = False, save_profile: bool = True,
                                     tags: list | None = None) -> str:
        """Store a torch model's ``state_dict`` (``object_type="ml_model"``), streamed through a temporary file.

        ``custom_metadata`` gets ``class`` (the model's ``module.QualName``) and, with ``save_profile``,
        ``model_profile`` (parameter counts and layers). Restore it with :meth:`load_torch_model`.
        """
        import torch

        custom = dict(custom_metadata or {})
        cls = type(model)
        custom["class"] = f"{cls.__module__}.{cls.__qualname__}"
        if save_profile:
            from flowcept.capture.torch import get_torch_model_profile

            custom["model_profile"] = get_torch_model_profile(model)
        from flowcept.store.objects import spooled

        with spooled() as spool:
            torch.save(model.state_dict(), spool)
            spool.seek(0)
            return self.insert_or_update_object(spool, object_id, task_id, workflow_id, "ml_model", custom,
                                                control_version=control_version, tags=tags)

    def update_object_metadata(self, object_id: str, custom_metadata: dict | None = None, tags: list | None = None,
                               object_type: str | None = None, task_id: str | None = None,
                               workflow_id: str | None = None, control_version: bool = True) -> str:
        """Change an object's metadata, keeping its content; by default as a new version.

        ``custom_metadata`` is merged key-wise into the stored one; the other arguments replace when not None.

        Returns:
            The object id.

        Raises:
            ObjectNotFoundError: no such object.
        """
        from flowcept.redact import redacted_metadata
        from flowcept.serialize import sanitize

        fields = {"custom_metadata": redacted_metadata(sanitize(custom_metadata)), "tags": tags,
                  "object_type": object_type, "task_id": task_id,
                  "workflow_id": workflow_id}
        doc = self.object_store.update_metadata(object_id, sanitize({k: v for k, v in fields.items() if v is not None}),
                                           control_version)
        self._announce(doc)
        return object_id

    def delete_object_keys(self, key_name: str, keys_list: list | tuple | set) -> int:
        """Delete the objects whose ``key_name`` is one of ``keys_list``, with all their versions.

        Objects match by their latest version (what :meth:`blob_object_query` shows). Content that another object
        or version shares (identical bytes are stored once) stays; a save of the same bytes running meanwhile keeps
        its content. Tasks that generated or used a deleted object keep their ``object:<id>`` references, so the
        lineage between those tasks is unchanged; loading the object raises :class:`flowcept.ObjectNotFoundError`.

        Args:
            key_name: ``"object_id"``, ``"task_id"``, ``"workflow_id"``, ``"campaign_id"``, ``"object_type"`` or
                ``"data_sha256"``.
            keys_list: a list, tuple or set of the values to delete (strings or numbers); empty deletes nothing.

        Returns:
            How many objects were deleted.

        Raises:
            QueryError: another ``key_name``, or ``keys_list`` is not a list, tuple or set of strings and numbers.
            StoreError: the database failed (nothing was deleted).
        """
        return self.object_store.delete(key_name, keys_list)

    # ------------------------------------------------------------------------------------------ loading

    def get_blob_object(self, object_id: str, version: int | None = None):
        """The object (latest version, or ``version``) as a :class:`flowcept.BlobObject` with its content loaded in
        ``data`` (unpickled if it was saved with ``pickle=True``). For large content use :meth:`download_object`
        or :meth:`open_blob_object`.

        Raises:
            ObjectNotFoundError: no such object or version.
            ObjectIntegrityError: the stored content does not match its checksum.
        """
        doc = self.object_store.get(object_id, version)
        if doc.get("pickle"):
            import pickle

            from flowcept.store.objects import spooled

            with spooled() as spool:  # verified in full before unpickling starts
                for chunk in self.object_store.iter_content(doc):
                    spool.write(chunk)
                spool.seek(0)
                data: Any = pickle.load(spool)
        else:
            data = self.object_store.read_bytes(doc)
        self._note_use(doc)
        return _blob(doc, data)

    get_ml_model = get_blob_object
    get_dataset = get_blob_object

    def download_object(self, object_id: str, dest: str | os.PathLike | BinaryIO, version: int | None = None):
        """Stream the object's content to ``dest`` in bounded memory; returns its :class:`flowcept.BlobObject`
        (without ``data``).

        A path is written through a temporary file in the same folder and renamed only once the checksum matched,
        so it never holds wrong bytes. A file object receives the bytes as they come: on
        :class:`flowcept.ObjectIntegrityError` discard what it received.
        """
        doc = self.object_store.get(object_id, version)
        if callable(getattr(dest, "write", None)):
            for chunk in self.object_store.iter_content(doc):
                dest.write(chunk)
        else:
            target = Path(dest)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")  # 0600, renamed once verified
            try:
                with os.fdopen(fd, "wb") as f:
                    for chunk in self.object_store.iter_content(doc):
                        f.write(chunk)
                os.replace(tmp, target)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        self._note_use(doc)
        return _blob(doc, None)

    def open_blob_object(self, object_id: str, version: int | None = None) -> BinaryIO:
        """A readable binary stream over the object's content (chunks fetched as read). The last ``read`` raises
        :class:`flowcept.ObjectIntegrityError` if the content does not match its checksum."""
        doc = self.object_store.get(object_id, version)
        self._note_use(doc)
        return io.BufferedReader(_ChunkReader(self.object_store.iter_content(doc)))

    def load_torch_model(self, model: Any, object_id: str, version: int | None = None):
        """Load a state_dict saved by :meth:`insert_or_update_torch_model` into ``model``; returns ``model``.

        Sets ``model._flowcept_model_object`` to the object's :class:`flowcept.BlobObject` (metadata only).

        Raises:
            ObjectNotFoundError: no such object or version.
        """
        import torch

        with tempfile.TemporaryDirectory(prefix="flowcept-model-") as tmp:
            path = Path(tmp) / "state_dict.pt"
            blob = self.download_object(object_id, path, version)
            state = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
        model._flowcept_model_object = blob
        return model

    # ------------------------------------------------------------------------------------------ finding

    def blob_object_query(self, filter: Mapping | None = None, projection: Any = None, limit: int = 0,
                          sort: Any = None) -> list[dict]:
        """Latest-version metadata of the objects matching a Mongo-style ``filter``."""
        return self.object_store.find(filter, projection, sort, limit)

    def object_collection_query(self, collection: str, filter: Mapping | None = None, projection: Any = None,
                                limit: int = 0, sort: Any = None, aggregation: Any = None) -> list[dict]:
        """``DBAPI.query`` on ``objects`` (latest versions) or ``object_history`` (every version).

        Raises:
            QueryError: an aggregation (not supported on objects) or a malformed filter.
        """
        if aggregation:
            from flowcept.errors import QueryError

            raise QueryError(f"aggregation is not supported on the {collection!r} collection")
        return self.object_store.find(filter, projection, sort, limit, collection=collection)

    def ml_model_query(self, filter: Mapping | None = None, projection: Any = None, limit: int = 0,
                       sort: Any = None) -> list[dict]:
        """:meth:`blob_object_query` over objects of type ``ml_model``."""
        return self.blob_object_query({"$and": [{"object_type": "ml_model"}, filter or {}]}, projection, limit, sort)

    def dataset_query(self, filter: Mapping | None = None, projection: Any = None, limit: int = 0,
                      sort: Any = None) -> list[dict]:
        """:meth:`blob_object_query` over objects of type ``dataset``."""
        return self.blob_object_query({"$and": [{"object_type": "dataset"}, filter or {}]}, projection, limit, sort)

    def get_object_history(self, object_id: str) -> list[dict]:
        """Metadata of every stored version, newest first (each with ``source: "objects_snapshot"``).

        Raises:
            ObjectNotFoundError: no such object.
        """
        return self.object_store.history(object_id)

    list_object_versions = get_object_history

    def get_blob_fingerprint(self, object_id: str, version: int | None = None) -> dict:
        """``{object_id, version, object_size_bytes, data_sha256, data_hash_algo, storage_type}`` (no content read).

        Raises:
            ObjectNotFoundError: no such object or version.
        """
        doc = self.object_store.get(object_id, version)
        return {k: doc.get(k) for k in ("object_id", "version", "object_size_bytes", "data_sha256", "data_hash_algo",
                                        "storage_type")}

    def blob_objects_equal(self, object_id_a: str, object_id_b: str, version_a: int | None = None,
                           version_b: int | None = None, fallback_to_payload: bool = False) -> bool:
        """Whether two objects (or versions) hold identical content, by size and sha256.

        ``fallback_to_payload``: when a fingerprint lacks a hash (records from elsewhere), compare the bytes.
        """
        a = self.get_blob_fingerprint(object_id_a, version_a)
        b = self.get_blob_fingerprint(object_id_b, version_b)
        if a["data_sha256"] and b["data_sha256"]:
            return (a["data_sha256"], a["object_size_bytes"]) == (b["data_sha256"], b["object_size_bytes"])
        if not fallback_to_payload:
            return False
        return self.get_blob_object(object_id_a, version_a).data == self.get_blob_object(object_id_b, version_b).data

    # ------------------------------------------------------------------------------------------ lineage

    @staticmethod
    def _fields(object_id, task_id, workflow_id, object_type, custom_metadata, tags) -> tuple[str, dict]:
        from flowcept import context as _ctx
        from flowcept.ids import new_uuid
        from flowcept.redact import redacted_metadata
        from flowcept.serialize import sanitize

        if object_id is None:
            object_id = new_uuid()
        elif not isinstance(object_id, str) or not object_id:
            raise TypeError(f"object_id must be a non-empty str, got {object_id!r}")
        scope = _ctx.current_scope()
        fields = {"task_id": task_id if task_id is not None else _ctx.get_parent_task_id(),
                  "workflow_id": workflow_id if workflow_id is not None else getattr(scope, "workflow_id", None),
                  "campaign_id": getattr(scope, "campaign_id", None) if workflow_id is None else None,
                  "object_type": object_type,
                  # stored directly, so secrets are redacted here (flowcept/redact.py)
                  "custom_metadata": redacted_metadata(sanitize(custom_metadata))
                  if custom_metadata is not None else None,
                  "tags": sanitize(tags) if tags is not None else None}
        return object_id, fields

    def _announce(self, doc: dict) -> None:
        """After a save: the metadata record to the pipeline (Redis stream, JSONL file); lineage to its task."""
        from flowcept.capture.emit import emit

        emit({**doc, "type": "object"})
        if doc.get("task_id"):
            self._link(doc["task_id"], "generated", doc)

    def _note_use(self, doc: dict) -> None:
        from flowcept.context import get_parent_task_id

        task_id = get_parent_task_id()
        if task_id is not None:
            self._link(task_id, "used", doc)

    def _link(self, task_id: str, field: str, doc: dict) -> None:
        from flowcept.capture.emit import emit

        ref = {"object_id": doc["object_id"], "version": doc["version"], "data_sha256": doc["data_sha256"]}
        record = {"type": "task", "task_id": task_id, field: {f"object:{doc['object_id']}": ref}}
        if doc.get("workflow_id") and field == "generated":
            record["workflow_id"] = doc["workflow_id"]
        if not emit(record):
            self.store.upsert([record])


class FlowceptObjects:
    """The reference's static object helpers on ``Flowcept`` (they delegate to ``Flowcept.db``)."""

    @staticmethod
    def insert_or_update_object(object: Any, object_id: str | None = None, task_id: str | None = None,
                                workflow_id: str | None = None, object_type: str | None = None,
                                custom_metadata: dict | None = None, save_data_in_collection: bool = False,
                                pickle: bool = False, control_version: bool = False, tags: list | None = None) -> str:
        """See :meth:`ObjectsAPI.insert_or_update_object`."""
        return _db().insert_or_update_object(object, object_id, task_id, workflow_id, object_type, custom_metadata,
                                             save_data_in_collection, pickle, control_version, tags)

    @staticmethod
    def insert_or_update_ml_model(object: Any, object_id: str | None = None, task_id: str | None = None,
                                  workflow_id: str | None = None, custom_metadata: dict | None = None,
                                  save_data_in_collection: bool = False, pickle: bool = False,
                                  control_version: bool = False, tags: list | None = None) -> str:
        """See :meth:`ObjectsAPI.insert_or_update_ml_model`."""
        return _db().insert_or_update_ml_model(object, object_id, task_id, workflow_id, custom_metadata,
                                               save_data_in_collection, pickle, control_version, tags)

    @staticmethod
    def insert_or_update_dataset(object: Any, object_id: str | None = None, task_id: str | None = None,
                                 workflow_id: str | None = None, custom_metadata: dict | None = None,
                                 save_data_in_collection: bool = False, pickle: bool = False,
                                 control_version: bool = False, tags: list | None = None) -> str:
        """See :meth:`ObjectsAPI.insert_or_update_dataset`."""
        return _db().insert_or_update_dataset(object, object_id, task_id, workflow_id, custom_metadata,
                                              save_data_in_collection, pickle, control_version, tags)

    @staticmethod
    def insert_or_update_torch_model(model: Any, object_id: str | None = None, task_id: str | None = None,
                                     workflow_id: str | None = None, custom_metadata: dict | None = None,
                                     control_version: bool = False, save_profile: bool = True,
                                     tags: list | None = None) -> str:
        """See :meth:`ObjectsAPI.insert_or_update_torch_model`."""
        return _db().insert_or_update_torch_model(model, object_id, task_id, workflow_id, custom_metadata,
                                                  control_version, save_profile, tags)

    @staticmethod
    def load_torch_model(model: Any, object_id: str, version: int | None = None):
        """See :meth:`ObjectsAPI.load_torch_model`."""
        return _db().load_torch_model(model, object_id, version)


def _db():
    from flowcept.controller import Flowcept

    return Flowcept.db


def _blob(doc: dict, data: Any):
    from flowcept.records import BlobObject

    blob = BlobObject.from_dict(doc)
    if data is not None:
        blob.data = data
    return blob


class _ChunkReader(io.RawIOBase):
    """A raw binary stream over an iterator of chunks."""

    def __init__(self, chunks: Iterator[bytes]):
        self._chunks = chunks
        self._left = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self._left:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._left = memoryview(chunk)
        n = min(len(buffer), len(self._left))
        buffer[:n] = self._left[:n]
        self._left = self._left[n:]
        return n
