"""``emit``: hand one record to the running pipeline (the entry point for adapters and integrations)."""

from __future__ import annotations

from flowcept import context as _ctx
from flowcept.serialize import snapshot_values


def emit(record: dict, scope: "_ctx.Scope | None" = None) -> bool:
    """Queue ``record`` on the pipeline of ``scope`` (default: the current one).

    ``workflow_id`` and ``campaign_id`` are filled in from the scope when the record has none. The record is
    snapshotted as capture snapshots inputs (``flowcept.serialize.snapshot_values``): a copy, so the caller's dict
    is never changed and later changes do not alter what is stored, with NaN and infinities as the strings
    ``"NaN"``, ``"Infinity"``, ``"-Infinity"`` (JSON has no such numbers: encoded as they are, they became null).

    Returns:
        False when no Flowcept is running (nothing was queued), else True.

    Raises:
        TypeError: ``record`` is not a dict.
    """
    if not isinstance(record, dict):
        raise TypeError(f"emit() takes a record dict (e.g. {{'type': 'task', 'task_id': ...}}), "
                        f"not {type(record).__name__}")
    if scope is None:
        scope = _ctx.current_scope()
        if scope is None:
            return False
    record = snapshot_values(dict(record))
    if "workflow_id" not in record:
        record["workflow_id"] = scope.workflow_id
    if "campaign_id" not in record and scope.campaign_id is not None:
        record["campaign_id"] = scope.campaign_id
    scope.buffer.emit(record)
    return True
