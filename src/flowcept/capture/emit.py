"""``emit``: hand one record to the running pipeline (the entry point for adapters and integrations)."""

from __future__ import annotations

from flowcept import context as _ctx


def emit(record: dict, scope: "_ctx.Scope | None" = None) -> bool:
    """Queue ``record`` on the pipeline of ``scope`` (default: the current one).

    ``workflow_id`` and ``campaign_id`` are filled in from the scope when the record has none. The record is
    queued as is (no copy): the caller must not mutate it afterwards.

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
    if "workflow_id" not in record:
        record["workflow_id"] = scope.workflow_id
    if "campaign_id" not in record and scope.campaign_id is not None:
        record["campaign_id"] = scope.campaign_id
    scope.buffer.emit(record)
    return True
