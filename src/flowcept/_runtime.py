"""The only process-wide mutable state: the process's record pipeline (buffer, flusher, sinks), shared by every
running controller and reference-counted, so two workflows in one process share one flusher and one store
connection, and stopping one never stops the other.
"""

from __future__ import annotations

import logging
import os
import threading

from flowcept.buffer import BatchBuffer

logger = logging.getLogger("flowcept")

_lock = threading.Lock()
_state: dict = {"buffer": None, "users": 0, "pid": None, "dump_path": None}


def make_sinks(settings, workflow_id: str | None) -> tuple[list, str | None]:
    """The sinks the settings ask for: the JSONL buffer file (when enabled) and the transport."""
    from flowcept.transport import make_transport
    from flowcept.transport.jsonl import JsonlBufferFile, buffer_file_path

    sinks: list = []
    dump_path = None
    if settings.project.dump_buffer.enabled:
        dump_path = buffer_file_path(settings.project.dump_buffer, workflow_id)
        sinks.append(JsonlBufferFile(dump_path))
    transport = make_transport(settings)
    if transport is not None:
        sinks.append(transport)
    if not sinks:
        logger.warning("flowcept: no store, no message queue and no buffer file are enabled, so captured records "
                       "are discarded. Enable databases.sqlite, mq or project.dump_buffer in the settings.")
    return sinks, dump_path


def acquire_buffer(settings, workflow_id: str | None) -> BatchBuffer:
    """The process's buffer, created on first use; each call must be paired with :func:`release_buffer`."""
    with _lock:
        if _state["pid"] != os.getpid():
            _state.update(buffer=None, users=0, pid=os.getpid(), dump_path=None)
        if _state["buffer"] is None:
            sinks, dump_path = make_sinks(settings, workflow_id)
            b = settings.buffer
            _state["buffer"] = BatchBuffer(sinks, batch_size=b.batch_size, flush_interval_secs=b.flush_interval_secs,
                                           max_size=b.max_size, full_wait_secs=b.full_wait_secs)
            _state["dump_path"] = dump_path
        _state["users"] += 1
        return _state["buffer"]


def release_buffer(buffer: BatchBuffer, timeout: float | None) -> bool:
    """Flush ``buffer``; the last user also closes it. Returns False when the flush timed out."""
    with _lock:
        last = _state["buffer"] is buffer and _state["users"] <= 1
        if _state["buffer"] is buffer:
            _state["users"] -= 1
            if last:
                _state["buffer"] = None
    if last:
        return buffer.close(timeout)
    return buffer.flush(timeout)


def current_dump_path() -> str | None:
    """The JSONL buffer file the running pipeline writes, if any."""
    return _state["dump_path"] if _state["buffer"] is not None else None
