"""Helpers the reference implementation's users call (``flowcept.commons.utils``), as faces over our modules."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

from flowcept.records import Status
from flowcept.serialize import sanitize

__all__ = [
    "replace_non_serializable", "replace_non_serializable_times", "get_utc_now", "get_utc_now_str",
    "get_utc_minutes_ago", "get_status_from_str", "evaluate_until", "assert_by_querying_tasks_until",
]

#: Record fields that hold epoch seconds.
TIME_FIELDS = ("started_at", "ended_at", "submitted_at", "registered_at", "utc_timestamp", "created_at",
               "updated_at")


def replace_non_serializable(obj: Any) -> Any:
    """A JSON-clean copy of ``obj``, with the same rules as capture (``to_dict``/``to_flowcept_dict``, registered
    classes through ``__dict__``, numpy as numbers and lists, anything else as ``<Class>_instance_id_<id>``)."""
    return sanitize(obj)


def replace_non_serializable_times(obj: dict, tz: timezone | None = None) -> dict:
    """A copy of a record with its epoch-seconds time fields as ISO 8601 strings (UTC unless ``tz``)."""
    tz = tz or timezone.utc
    out = dict(obj)
    for key in TIME_FIELDS:
        value = out.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out[key] = datetime.fromtimestamp(value, tz).isoformat()
    return out


def get_utc_now() -> float:
    """Now, in epoch seconds."""
    return time.time()


def get_utc_now_str() -> str:
    """Now, as an ISO 8601 UTC string."""
    return datetime.now(timezone.utc).isoformat()


def get_utc_minutes_ago(minutes_ago: int = 1) -> float:
    """``minutes_ago`` minutes before now, in epoch seconds."""
    return (datetime.now(timezone.utc) - timedelta(minutes=minutes_ago)).timestamp()


def get_status_from_str(status_str: str) -> Status:
    """The :class:`Status` named by ``status_str`` (case-insensitive); ``Status.UNKNOWN`` for anything else."""
    try:
        return Status(str(status_str).upper())
    except ValueError:
        return Status.UNKNOWN


def evaluate_until(evaluation_condition: Callable[[], bool], max_trials: int = 30, max_time: float = 10.0,
                   msg: str = "") -> bool:
    """Call ``evaluation_condition`` until it returns true, at most ``max_trials`` times over ``max_time``
    seconds. Returns whether it did. (For tests written for the reference; our ``stop()`` is already exact.)"""
    pause = max_time / max(1, max_trials)
    for _ in range(max(1, max_trials)):
        if evaluation_condition():
            return True
        time.sleep(pause)
    if msg:
        import logging

        logging.getLogger("flowcept").warning("condition not met: %s", msg)
    return False


def assert_by_querying_tasks_until(filter: dict, condition_to_evaluate: Callable[[list], bool] | None = None,
                                   max_trials: int = 30, max_time: float = 10.0) -> bool:
    """Query tasks with ``filter`` until some match (and ``condition_to_evaluate(docs)`` holds, when given)."""
    from flowcept.controller import Flowcept

    def check() -> bool:
        docs = Flowcept.db.task_query(filter)
        return bool(docs) and (condition_to_evaluate is None or bool(condition_to_evaluate(docs)))

    return evaluate_until(check, max_trials=max_trials, max_time=max_time)
