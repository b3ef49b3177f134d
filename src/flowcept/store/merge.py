"""Merge rules for records that share an id: later values win, dicts merge key-wise, terminal status sticks.

Every message about a task (or workflow, or agent) is a partial view of one record. Messages can arrive twice
(at-least-once delivery) or out of order (a RUNNING message overtaken by its FINISHED one), so merging must be
idempotent and must never move a record back from a terminal status.
"""

from __future__ import annotations

from typing import Any, Iterable

from flowcept.records import TERMINAL_STATUSES, record_key

__all__ = ["merge_record", "coalesce", "TERMINAL_STATUSES"]


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


def coalesce(records: Iterable[dict]) -> list[dict]:
    """Merge the records of one batch that share an id, keeping first-seen order.

    Records are matched by :func:`flowcept.records.record_key` (their kind's id key); a record without an id is
    passed through unchanged.

    Args:
        records: the batch, oldest message first.

    Returns:
        One record per id (merged with :func:`merge_record`), in the order each id was first seen.
    """
    out: list[dict] = []
    index: dict[tuple[str, Any], int] = {}
    for record in records:
        key = record_key(record)
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
