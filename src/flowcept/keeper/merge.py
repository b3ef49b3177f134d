"""Merge rules for records that share an id: later values win, dicts merge key-wise, terminal status sticks.

Every message about a task (or workflow, or agent) is a partial view of one record. Messages can arrive twice
(at-least-once delivery) or out of order (a RUNNING message overtaken by its FINISHED one), so merging must be
idempotent and must never move a record back from a terminal status.
"""

from __future__ import annotations

from typing import Any, Iterable

TERMINAL_STATUSES = frozenset({"FINISHED", "ERROR"})

# Id key per record type; mirrors flowcept.store.COLLECTIONS without importing the store package.
_ID_KEYS = (("task", "task_id"), ("workflow", "workflow_id"), ("agent", "agent_id"), ("object", "object_id"))


def _merge_dicts(old: dict, new: dict) -> dict:
    merged = dict(old)
    for key, value in new.items():
        if value is None:
            continue
        current = merged.get(key)
        if isinstance(value, dict) and isinstance(current, dict):
            merged[key] = _merge_dicts(current, value)
        else:
            merged[key] = value
    return merged


def merge_record(old: dict, new: dict) -> dict:
    """Merge a later message ``new`` into the stored record ``old``; neither argument is modified.

    Rules:
        * a field present in ``new`` replaces the one in ``old``; ``None`` in ``new`` means "no news" and is skipped;
        * when both values are dicts they merge key-wise, recursively (``used``, ``generated``, telemetry...);
        * a terminal ``status`` (``FINISHED``, ``ERROR``) is never replaced by a non-terminal one; between two
          terminal statuses the later wins;
        * ``type`` is kept from ``old`` when it has one.

    Args:
        old: the record as stored (or as merged so far).
        new: the later message about the same id.

    Returns:
        A new dict with the merged record.
    """
    merged = _merge_dicts(old, new)
    old_status = old.get("status")
    new_status = new.get("status")
    if old_status is not None and new_status is not None:
        if str(old_status) in TERMINAL_STATUSES and str(new_status) not in TERMINAL_STATUSES:
            merged["status"] = old_status
    if old.get("type") is not None:
        merged["type"] = old["type"]
    return merged


def _record_key(record: dict) -> tuple[str, Any] | None:
    rtype = record.get("type")
    for type_name, id_key in _ID_KEYS:
        if rtype == type_name:
            rid = record.get(id_key)
            return (id_key, rid) if rid is not None else None
    if rtype is not None and rtype not in ("task", "workflow", "agent"):
        return None  # a kind of message without an identity of ours (e.g. control messages)
    # Untyped: the same inference as flowcept.store.collection_of.
    for id_key in ("task_id", "agent_id", "workflow_id"):
        rid = record.get(id_key)
        if rid is not None:
            return (id_key, rid)
    return None


def coalesce(records: Iterable[dict]) -> list[dict]:
    """Merge the records of one batch that share an id, keeping first-seen order.

    Records are matched by their type's id key (``task_id``, ``workflow_id``, ``agent_id``); a record without an id
    is passed through unchanged.

    Args:
        records: the batch, oldest message first.

    Returns:
        One record per id (merged with :func:`merge_record`), in the order each id was first seen.
    """
    out: list[dict] = []
    index: dict[tuple[str, Any], int] = {}
    for record in records:
        key = _record_key(record)
        if key is None:
            out.append(record)
            continue
        pos = index.get(key)
        if pos is None:
            index[key] = len(out)
            out.append(record)
        else:
            out[pos] = merge_record(out[pos], record)
    return out
