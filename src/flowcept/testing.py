"""Helpers for tests: :func:`reset` the process state between tests, and :func:`capture_records` into memory.

::

    from flowcept import Flowcept, flowcept_task
    from flowcept.testing import capture_records

    def test_my_step():
        with capture_records() as records:
            with Flowcept(workflow_name="test"):
                my_step(3)
        assert [r["used"] for r in records if r["type"] == "task"] == [{"x": 3}]

The records are the JSON-clean dicts the pipeline delivers to every sink (what a store keeps), in capture order,
one per message (a workflow has its start and end messages). They are collected whatever the settings; with
``project.db_flush_mode: offline`` and ``project.dump_buffer.enabled: false`` nothing else is written.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Iterator

from flowcept import _runtime
from flowcept._runtime import RUNTIME

__all__ = ["capture_records", "reset", "RecordList"]


class RecordList(list):
    """The records captured so far (a list of dicts), filled as batches are delivered."""

    def of_type(self, kind: str) -> list[dict]:
        """The records of one kind (``"task"``, ``"workflow"``, ``"agent"``)."""
        return [r for r in self if r.get("type") == kind]


class _MemorySink:
    """A sink that keeps every delivered record in a list (flusher thread appends, the test reads after flush)."""

    name = "memory"
    primary = False

    def __init__(self, records: RecordList):
        self.records = records
        self._lock = threading.Lock()

    def write(self, batch) -> int:
        docs = batch.docs
        with self._lock:
            self.records.extend(docs)
        return 0

    def flush(self, timeout: float | None = None) -> bool:
        return True

    def close(self) -> None:
        return None


@contextlib.contextmanager
def capture_records(timeout: float = 30.0) -> Iterator[RecordList]:
    """Collect every record this process captures inside the block, in memory.

    On leaving the block, what a still-running Flowcept captured is flushed first, so the list is complete.

    Args:
        timeout: how long to wait for that flush, in seconds.

    Yields:
        A :class:`RecordList` that fills as records are delivered.
    """
    records = RecordList()
    sink = _MemorySink(records)
    _runtime.add_tap(sink)
    try:
        yield records
    finally:
        _runtime.flush_pending(timeout)
        _runtime.remove_tap(sink)


def reset() -> None:
    """Stop every running Flowcept of this process and close the shared query API, so a test starts clean.

    Settings are re-read from the environment on next use; one-time warnings may be given again; the capture
    error and warning counts start from zero.
    """
    from flowcept.errors import ConfigError
    from flowcept.settings import reload_settings

    for scope in list(reversed(RUNTIME.running_scopes)):
        owner = scope.owner
        if owner is not None and getattr(owner, "is_started", False):
            owner.stop()
    with RUNTIME.db_lock:
        db, RUNTIME.db = RUNTIME.db, None
    if db is not None:
        db.close()
    RUNTIME.taps.clear()
    RUNTIME.warned.clear()
    RUNTIME.capture_errors = RUNTIME.capture_warnings = 0
    RUNTIME.error_logged_at.clear()
    try:
        reload_settings()
    except ConfigError:
        pass  # the cache is dropped either way; the error comes back to whoever reads the settings next
