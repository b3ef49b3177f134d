"""The per-process record buffer and its flusher thread.

Capture code only appends a dict to a deque (atomic under the GIL, no lock). The flusher thread wakes when a batch
is full or every ``flush_interval_secs``, turns each record into a JSON-clean dict once (:func:`prepare`) and hands
the batch to every sink in order (the JSONL buffer file, then the transport).

``flush()`` is exact: it appends a marker and waits until the flusher has passed it, so every record appended
before the call has been written by every sink (or counted as dropped).
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import weakref
from collections import deque
from typing import Protocol, Sequence

from flowcept._internal_errors import report_internal_error
from flowcept.serialize import flatten_namespaces, sanitize

logger = logging.getLogger("flowcept")


class Sink(Protocol):
    """Where the flusher delivers batches.

    ``write`` runs on the flusher thread only; it may block. It returns the number of records it could not keep
    (0 when all are safe) and must not raise for per-record problems; an exception means the whole batch failed.
    """

    name: str

    def write(self, docs: Sequence[dict]) -> int: ...

    def flush(self, timeout: float | None = None) -> bool: ...

    def close(self) -> None: ...


class _Marker:
    __slots__ = ("event",)

    def __init__(self):
        self.event = threading.Event()


def prepare(record: dict) -> dict:
    """The JSON-clean form of one captured record, with derived fields filled in."""
    used = record.get("used")
    if used is not None and type(used) is dict:
        flatten_namespaces(used)
    doc = sanitize(record)
    if type(doc) is not dict:
        doc = {"value": doc}
    if None in doc.values():
        doc = {k: v for k, v in doc.items() if v is not None}
    start, end = doc.get("telemetry_at_start"), doc.get("telemetry_at_end")
    if start and end and "telemetry_summary" not in doc:
        try:
            from flowcept.capture.telemetry import summarize

            doc["telemetry_summary"] = summarize(start, end)
        except Exception as exc:  # noqa: BLE001
            report_internal_error("telemetry summary", exc)
    return doc


class BatchBuffer:
    """Bounded buffer of captured records, drained by one flusher thread into a list of sinks.

    Args:
        sinks: receivers of every batch, in order.
        batch_size: records per batch; reaching it wakes the flusher.
        flush_interval_secs: the flusher also wakes this often.
        max_size: when this many records wait, producers wait up to ``full_wait_secs`` for room, then drop
            (counted in :attr:`dropped`).
    """

    def __init__(self, sinks: Sequence[Sink], batch_size: int = 2000, flush_interval_secs: float = 0.1,
                 max_size: int = 200_000, full_wait_secs: float = 5.0):
        self.sinks = list(sinks)
        self.batch_size = max(1, int(batch_size))
        self.flush_interval_secs = float(flush_interval_secs)
        self.max_size = max(self.batch_size, int(max_size))
        self.full_wait_secs = float(full_wait_secs)
        self._queue: deque = deque()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._closing = False
        self._start_lock = threading.Lock()
        self.written = 0  # records every sink accepted (flusher thread only)
        self.dropped = 0  # records lost, with the reason logged
        self.sink_failures: dict[str, int] = {}
        _live_buffers.add(self)

    # ---- producer side (hot path) -------------------------------------------------------------------------
    def append(self, record: dict) -> None:
        """Queue one record. Never raises; may wait briefly when the buffer is full."""
        q = self._queue
        q.append(record)
        if len(q) >= self.batch_size or self._thread is None:
            self._kick(len(q))

    def extend(self, records: Sequence[dict]) -> None:
        """Queue several records at once."""
        q = self._queue
        q.extend(records)
        if len(q) >= self.batch_size or self._thread is None:
            self._kick(len(q))

    def _kick(self, pending: int) -> None:
        if self._thread is None:
            self._start()
        self._wake.set()
        if pending >= self.max_size:
            self._wait_for_room()

    def _wait_for_room(self) -> None:
        deadline = time.monotonic() + self.full_wait_secs
        q = self._queue
        while len(q) >= self.max_size:
            if time.monotonic() > deadline or threading.current_thread() is self._thread:
                # The flusher is stuck; keep the newest records out rather than blocking the user forever.
                excess = len(q) - self.max_size + 1
                lost = 0
                for _ in range(excess):
                    try:
                        item = q.pop()
                    except IndexError:
                        break
                    if type(item) is _Marker:
                        q.append(item)
                        break
                    lost += 1
                self.dropped += lost
                if lost:
                    report_internal_error("buffer full", RuntimeError(
                        f"{lost} record(s) dropped: the buffer stayed full for {self.full_wait_secs}s"))
                return
            self._wake.set()
            time.sleep(0.001)

    @property
    def pending(self) -> int:
        """Records queued and not yet delivered."""
        return sum(1 for item in self._queue if type(item) is not _Marker)

    # ---- control ------------------------------------------------------------------------------------------
    def _start(self) -> None:
        with self._start_lock:
            if self._thread is None or not self._thread.is_alive():
                self._closing = False
                thread = threading.Thread(target=self._run, name="flowcept-flusher", daemon=True)
                self._thread = thread
                thread.start()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every record appended before this call has gone through the sinks.

        Returns:
            True when done, False when ``timeout`` passed first.
        """
        marker = _Marker()
        self._queue.append(marker)
        if self._thread is None or not self._thread.is_alive():
            self._start()
        self._wake.set()
        return marker.event.wait(timeout)

    def close(self, timeout: float | None = None) -> bool:
        """Flush, stop the flusher thread and close the sinks. Idempotent."""
        done = self.flush(timeout)
        self._closing = True
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        for sink in self.sinks:
            try:
                sink.close()
            except Exception as exc:  # noqa: BLE001
                report_internal_error(f"closing {sink.name}", exc)
        _live_buffers.discard(self)
        return done

    def _after_fork_in_child(self) -> None:
        # The flusher thread did not survive the fork; records queued by the parent are the parent's to send.
        self._queue = deque()
        self._wake = threading.Event()
        self._start_lock = threading.Lock()
        self._thread = None

    # ---- flusher thread -----------------------------------------------------------------------------------
    def _run(self) -> None:
        from flowcept.context import suppress_capture

        suppress_capture()
        wake, interval = self._wake, self.flush_interval_secs
        while True:
            wake.wait(interval)
            wake.clear()
            self._drain()
            if self._closing and not self._queue:
                return

    def _drain(self) -> None:
        q, size = self._queue, self.batch_size
        while q:
            batch: list = []
            marker = None
            while q and len(batch) < size:
                item = q.popleft()
                if type(item) is _Marker:
                    marker = item
                    break
                batch.append(item)
            if batch:
                self._export(batch)
            if marker is not None:
                for sink in self.sinks:
                    try:
                        sink.flush()
                    except Exception as exc:  # noqa: BLE001
                        report_internal_error(f"flushing {sink.name}", exc)
                marker.event.set()

    def _export(self, batch: list) -> None:
        docs = []
        for record in batch:
            try:
                docs.append(prepare(record))
            except Exception as exc:  # noqa: BLE001
                self.dropped += 1
                report_internal_error("preparing a record", exc)
        if not docs:
            return
        lost = 0
        for sink in self.sinks:
            try:
                n = sink.write(docs)
            except Exception as exc:  # noqa: BLE001
                n = len(docs)
                report_internal_error(f"writing to {sink.name}", exc)
            if n:
                self.sink_failures[sink.name] = self.sink_failures.get(sink.name, 0) + n
                if getattr(sink, "primary", False):
                    lost = max(lost, n)
        self.dropped += lost
        self.written += len(docs) - lost


_live_buffers: "weakref.WeakSet[BatchBuffer]" = weakref.WeakSet()


def _reset_after_fork() -> None:
    for buf in list(_live_buffers):
        buf._after_fork_in_child()


def _flush_at_exit() -> None:
    for buf in list(_live_buffers):
        try:
            buf.close(timeout=10.0)
        except Exception:  # noqa: BLE001
            pass


os.register_at_fork(after_in_child=_reset_after_fork)
atexit.register(_flush_at_exit)
