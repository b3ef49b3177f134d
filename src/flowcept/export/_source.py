"""Where exports and reports read records from: the store (paged) or records in memory, behind one interface."""

from __future__ import annotations

import hashlib
from typing import Any, Iterable, Iterator, Mapping, Protocol, Sequence

import orjson

from flowcept.errors import ConfigError

__all__ = ["RecordSource", "StoreSource", "RecordsSource", "value_hash", "is_trivial", "PAGE_SIZE"]

#: Tasks per page read from the store: one page is all an export holds in memory at a time.
PAGE_SIZE = 2000


class RecordSource(Protocol):
    """The records of one or more workflows, read the same way from a store or from a list.

    All methods are called on the caller's thread; ``task_pages`` may be iterated once per export pass.
    """

    def workflows(self) -> list[dict]:
        """The workflow records (one per workflow; a stub ``{"workflow_id": ...}`` when only tasks were stored)."""
        ...

    def task_pages(self) -> Iterator[list[dict]]:
        """The tasks in pages of at most :data:`PAGE_SIZE`, in a stable order."""
        ...

    def tasks_by_id(self, task_ids: Iterable[str]) -> dict[str, dict]:
        """The tasks with these ids that exist, by id (used to name the parents of a page's tasks)."""
        ...

    def objects(self) -> list[dict]:
        """Object (blob) metadata records of these workflows; empty when the store keeps none."""
        ...


def _task_filter(workflow_ids: Sequence[str]) -> dict:
    return {"workflow_id": workflow_ids[0]} if len(workflow_ids) == 1 else {"workflow_id": {"$in": list(workflow_ids)}}


class StoreSource:
    """Records of the given workflows (or of every workflow of ``campaign_id``) in a :class:`flowcept.store.Store`.

    Args:
        store: an open store (not closed here).
        workflow_id: one workflow.
        campaign_id: every workflow (and task) of the campaign, when ``workflow_id`` is None.
        page_size: tasks per page.

    Raises:
        ConfigError: neither id given, or no workflow record and no task carries the id (the message names it).
    """

    def __init__(self, store: Any, workflow_id: str | None = None, campaign_id: str | None = None,
                 page_size: int = PAGE_SIZE):
        self.store = store
        self.page_size = page_size
        if workflow_id is not None:
            docs = store.find("workflows", {"workflow_id": workflow_id}, limit=1)
            if not docs and not store.find("tasks", {"workflow_id": workflow_id}, projection=["task_id"], limit=1):
                raise ConfigError(f"no workflow {workflow_id!r} in the store (no workflow record and no task has "
                                  "this workflow_id); list workflows with: flowcept query -c workflows",
                                  key="workflow_id")
            self._workflows = docs or [{"type": "workflow", "workflow_id": workflow_id}]
        elif campaign_id is not None:
            docs = store.find("workflows", {"campaign_id": campaign_id}, sort=[("started_at", 1)])
            ids = {d["workflow_id"] for d in docs}
            for task_wf in store.aggregate("tasks", {"campaign_id": campaign_id}, group_by="workflow_id",
                                           aggregations=[("count", "*")]):
                if task_wf.get("workflow_id") is not None and task_wf["workflow_id"] not in ids:
                    docs.append({"type": "workflow", "workflow_id": task_wf["workflow_id"],
                                 "campaign_id": campaign_id})
                    ids.add(task_wf["workflow_id"])
            if not docs:
                raise ConfigError(f"no workflow of campaign {campaign_id!r} in the store", key="campaign_id")
            self._workflows = docs
        else:
            raise ConfigError("give a workflow_id or a campaign_id", key="workflow_id")

    def workflows(self) -> list[dict]:
        return list(self._workflows)

    def task_pages(self) -> Iterator[list[dict]]:
        flt = _task_filter([w["workflow_id"] for w in self._workflows])
        yield from self.store.find_pages("tasks", flt, page_size=self.page_size)

    def tasks_by_id(self, task_ids: Iterable[str]) -> dict[str, dict]:
        ids = list(dict.fromkeys(task_ids))
        out: dict[str, dict] = {}
        for start in range(0, len(ids), 1000):
            for doc in self.store.find("tasks", {"task_id": {"$in": ids[start:start + 1000]}},
                                       projection=["task_id", "activity_id", "workflow_id"]):
                out[doc["task_id"]] = doc
        return out

    def objects(self) -> list[dict]:
        from flowcept.errors import ConfigError as _NoObjects
        from flowcept.store.objects import make_object_store

        try:
            objects = make_object_store(self.store)
        except _NoObjects:  # a record store that keeps no objects
            return []
        try:
            ids = [w["workflow_id"] for w in self._workflows]
            return objects.find({"workflow_id": {"$in": ids}}, None, [("updated_at", -1)], 100)
        finally:
            objects.close()


class RecordsSource:
    """Records already in memory (a list, or a JSONL file read by the caller), split by ``type``.

    Args:
        records: task, workflow and object records; others are ignored. Several messages of one id are merged.
        workflow_id: keep only this workflow's records.
        page_size: tasks per page.
    """

    def __init__(self, records: Iterable[Mapping], workflow_id: str | None = None, page_size: int = PAGE_SIZE):
        from flowcept.store import collection_of
        from flowcept.store.merge import coalesce

        self.page_size = page_size
        self._workflows: list[dict] = []
        self._tasks: list[dict] = []
        self._objects: list[dict] = []
        for rec in coalesce([dict(r) for r in records]):
            if workflow_id is not None and rec.get("workflow_id") != workflow_id:
                continue
            if rec.get("type") == "object" or ("object_id" in rec and "task_id" not in rec):
                self._objects.append(rec)
                continue
            kind = collection_of(rec)
            if kind == "tasks" and rec.get("task_id") is not None:
                self._tasks.append(rec)
            elif kind == "workflows" and rec.get("workflow_id") is not None:
                self._workflows.append(rec)
        known = {w["workflow_id"] for w in self._workflows}
        for task in self._tasks:
            wf = task.get("workflow_id")
            if wf is not None and wf not in known:
                known.add(wf)
                self._workflows.append({"type": "workflow", "workflow_id": wf})
        if workflow_id is not None and not self._workflows:
            raise ConfigError(f"no record of workflow {workflow_id!r} in the given records", key="workflow_id")

    def workflows(self) -> list[dict]:
        return list(self._workflows)

    def task_pages(self) -> Iterator[list[dict]]:
        for start in range(0, len(self._tasks), self.page_size):
            yield self._tasks[start:start + self.page_size]

    def tasks_by_id(self, task_ids: Iterable[str]) -> dict[str, dict]:
        wanted = set(task_ids)
        return {t["task_id"]: t for t in self._tasks if t["task_id"] in wanted}

    def objects(self) -> list[dict]:
        return list(self._objects)


def value_hash(value: Any) -> str:
    """SHA-256 (hex) of a value's canonical JSON (sorted keys), so equal values get equal hashes in every task."""
    data = orjson.dumps(value, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS, default=str)
    return hashlib.sha256(data).hexdigest()


def is_trivial(value: Any) -> bool:
    """Values too common to mean data flow when two tasks share them: None, booleans, 0, +-1, short strings,
    empty containers."""
    if value is None or isinstance(value, bool):
        return True
    if isinstance(value, (int, float)):
        return value in (0, 1, -1)
    if isinstance(value, str):
        return len(value) <= 1
    if isinstance(value, (list, dict)):
        return not value
    return False
