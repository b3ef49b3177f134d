"""The per-process record buffer and its flusher thread.

Capture code only appends a dict to a deque (atomic under the GIL, no lock). The flusher thread wakes when a batch
is full or every ``flush_interval_secs``, encodes each record to JSON once (:func:`encode_batch`) and hands the
batch to every sink in order (the JSONL buffer file, then the transport).

``flush()`` is exact: it appends a marker and waits until the flusher has passed it, so every record appended
before the call has been written by every sink (or counted as dropped).
"""

from __future__ import annotations

import logging
import multiprocessing.util
import os
import sqlite3
import threading
import time
from collections import deque
from itertools import islice, repeat
from typing import Protocol, Sequence

import orjson

from flowcept._internal_errors import report_internal_error
from flowcept._runtime import RUNTIME
from flowcept.records import KINDS, kind_of
from flowcept.serialize import dumps_each

logger = logging.getLogger("flowcept")


class EncodedBatch:
    """One batch as it leaves the flusher: its records encoded once, in capture order.

    The flusher encodes each record to compact JSON once (:func:`encode_batch`); every sink takes what it needs from
    those bytes without decoding or re-encoding them: the stores and the Redis stream a JSON array
    (:meth:`array`), the JSONL file the records one per line (:meth:`lines`), both joined from the same encoded
    records. A batch made from an array alone (a keeper reading a stream) splits it only when asked for lines.
    ``kinds`` is the set of record types in the batch when known (the stores then skip kinds it cannot hold).
    """

    __slots__ = ("_array", "count", "has_data", "kinds", "ids", "_parts", "_docs", "_lines")

    def __init__(self, array: bytes | None, count: int, has_data: bool = False, *,
                 parts: list[bytes] | None = None, kinds: frozenset | None = None, ids: list[str] | None = None):
        self._array = array
        self.count = count
        self.has_data = has_data
        self.kinds = kinds
        #: With one kind of record only, all with string ids: the ids in order (a store then binds them as they are).
        self.ids = ids
        self._parts = parts  # one compact JSON document per record (when encoded here)
        self._docs: list[dict] | None = None
        self._lines: tuple[bool, bytes] | None = None  # (data stripped?, lines)

    def __len__(self) -> int:
        return self.count

    def array(self) -> bytes:
        """The batch as one JSON array (bytes)."""
        if self._array is None:
            self._array = b"[" + b",".join(self._parts) + b"]"
        return self._array

    @property
    def docs(self) -> list[dict]:
        """The records as JSON-clean dicts (decoded once, on first use)."""
        if self._docs is None:
            self._docs = orjson.loads(self.array())
        return self._docs

    def lines(self, drop_data: bool = True) -> bytes:
        """The records as JSON Lines (one compact record per line, newline-terminated), ``data`` left out."""
        strip = drop_data and self.has_data
        if self._lines is None or self._lines[0] != strip:
            if self._parts is not None and not strip:
                # The encoded records joined: compact JSON never holds a raw newline, so no split is needed.
                text = b"\n".join(self._parts) + b"\n" if self._parts else b""
            else:
                text = json_lines(self.array(), strip)
            self._lines = (strip, text)
        return self._lines[1]

    @property
    def parts(self) -> list[bytes] | None:
        """One compact JSON document per record, in order, when the batch was encoded here (else None)."""
        return self._parts

    @property
    def blobs(self) -> list[bytes]:
        """One JSON document per record."""
        if self._parts is not None:
            return self._parts
        return self.lines(drop_data=False).splitlines() if not self.has_data else \
            [orjson.dumps(d) for d in self.docs]

    @classmethod
    def from_docs(cls, docs: Sequence[dict]) -> "EncodedBatch":
        """A batch of records that are already JSON-clean dicts."""
        return encode_batch(list(docs))


_splitter = threading.local()


def json_lines(array: bytes, drop_data: bool) -> bytes:
    """Split a JSON array into JSON Lines inside SQLite (C code that runs without the GIL)."""
    conn = getattr(_splitter, "conn", None)
    if conn is None or _splitter.pid != os.getpid():
        conn = _splitter.conn = sqlite3.connect(":memory:", check_same_thread=False)
        _splitter.pid = os.getpid()
    value = "json_remove(value, '$.data')" if drop_data else "value"
    # A BLOB comes back as bytes: no decoding to str and encoding again with the GIL held.
    (text,) = conn.execute(f"SELECT CAST(group_concat({value}, char(10)) || char(10) AS BLOB) FROM json_each(?)",
                           (array,)).fetchone()
    return text or b""


class Sink(Protocol):
    """Where the flusher delivers batches.

    ``write`` runs on the flusher thread only; it may block. It returns the number of records it could not keep
    (0 when all are safe) and must not raise for per-record problems; an exception means the whole batch failed.
    A sink whose ``primary`` attribute is true is where records are kept: its losses count as dropped records.
    A sink that writes on a thread of its own (the JSONL file) learns of losses after ``write`` returned: it also
    has ``take_failures() -> int`` (records lost since the last call), which the flusher reads after each flush.
    """

    name: str

    def write(self, batch: EncodedBatch) -> int: ...

    def flush(self, timeout: float | None = None) -> bool: ...

    def close(self) -> None: ...


class _Marker:
    __slots__ = ("event",)

    def __init__(self):
        self.event = threading.Event()


def encode_batch(records: list) -> EncodedBatch:
    """Encode captured records (null fields left out, values JSON cannot hold converted) into a batch.

    Per-record work stays in C (``map`` over the records, one encoder call each, joins and byte searches over the
    whole batch): the capturing threads share the GIL with this one, so an interpreted step per record would slow
    capture down.
    """
    try:
        kinds = frozenset(map(dict.get, records, repeat("type")))
    except TypeError:  # an unhashable "type": hostile input, routed by the stores' own tests
        kinds = None
    if kinds is not None and None in kinds:
        # Untyped messages (other tools', or emit() without "type"): typed here as records.kind_of reads them, so
        # that every store and the keeper route them (the stores route by "type"). The caller's dict is not changed.
        records[:] = [_typed(record) if record.get("type") is None else record for record in records]
        kinds = frozenset(map(dict.get, records, repeat("type")))
    parts = dumps_each(records)
    has_data = any(map(dict.__contains__, records, repeat("data")))
    batch = EncodedBatch(None, len(records), has_data, parts=parts)
    if b":null" in batch.lines(drop_data=False):  # the JSONL file's lines: joined once, used twice
        # Top-level null fields are left out (a null nested in a value is data and stays). Identity tests (id(None)
        # among the value ids): `None in values` would call arrays' __eq__.
        none_id = id(None)
        for i, record in enumerate(records):
            if none_id in map(id, record.values()):
                records[i] = record = {k: v for k, v in record.items() if v is not None}
                parts[i] = dumps_each([record])[0]
        batch = EncodedBatch(None, len(records), has_data, parts=parts)
    if kinds is None:
        return batch
    batch.kinds = kinds
    if len(kinds) == 1:
        (kind,) = kinds
        if kind in KINDS:
            ids = list(map(dict.get, records, repeat(KINDS[kind][1])))
            if set(map(type, ids)) == {str}:
                batch.ids = ids
    return batch


def _typed(record: dict) -> dict:
    """An untyped record with the ``type`` :func:`flowcept.records.kind_of` infers (a copy), or itself when none."""
    kind = kind_of(record)
    return {**record, "type": kind} if kind is not None else record


#: The body of :meth:`BatchBuffer.emit` as source, for the capture wrappers generated in
#: ``flowcept/capture/_codegen.py``: inlined, it saves a method call per record (see bench/bench_core.py).
#: ``{buffer}`` is a local name bound to the buffer, ``{record}`` an expression for the record; ``{indent}`` the
#: indentation of the lines after the first. Kept here, beside ``emit``, so the two change together.
EMIT_INLINE = (
    "_fc_q = {buffer}._queue\n"
    "{indent}_fc_q.append({record})\n"
    "{indent}if len(_fc_q) >= {buffer}._kick_at:\n"
    "{indent}    {buffer}._kick(len(_fc_q))"
)


def emit_inline(buffer: str, record: str, indent: str) -> str:
    """:data:`EMIT_INLINE` for the local name ``buffer`` and the expression ``record``, lines after the first
    indented by ``indent``."""
    return EMIT_INLINE.format(buffer=buffer, record=record, indent=indent)


def _leading(queue: deque, n: int) -> list:
    """The first ``n`` items of ``queue``, which producers append to meanwhile. Copying them cannot be interrupted by
    another thread, except when the copy's allocation runs the cyclic GC and it runs a finalizer (``__del__``, a
    weakref callback): Python code, where a producer may take the GIL and append, which makes the deque's iterator
    raise. ``deque.copy()`` allocates nothing the GC counts while it iterates, so it cannot be interrupted: the
    fallback (it copies the whole queue, not only ``n``)."""
    try:
        return list(islice(queue, n))
    except RuntimeError:  # "deque mutated during iteration"
        return list(islice(queue.copy(), n))


class BatchBuffer:
    """Bounded buffer of captured records, drained by one flusher thread into a list of sinks.

    Args:
        sinks: receivers of every batch, in order.
        batch_size: records per batch; reaching it wakes the flusher.
        flush_interval_secs: the flusher also wakes this often.
        max_size: when this many records wait, producers wait up to ``full_wait_secs`` for room, then drop
            (counted in :attr:`dropped`).
        redactor: ``(records) -> count`` run on each batch before it is encoded (flowcept.redact.Redactor); called
            again with ``thorough=True`` when encoding converted an object its quick check let through.
    """

    def __init__(self, sinks: Sequence[Sink], batch_size: int = 2000, flush_interval_secs: float = 0.1,
                 max_size: int = 20_000, full_wait_secs: float = 5.0, redactor=None):
        self.sinks = list(sinks)
        self.batch_size = max(1, int(batch_size))
        self.flush_interval_secs = float(flush_interval_secs)
        self.max_size = max(self.batch_size, int(max_size))
        self.full_wait_secs = float(full_wait_secs)
        self._queue: deque = deque()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        # Queue length at which an append wakes the flusher (0: the first append starts it); see _kick.
        self._kick_at = 0
        self._held = 0  # records at the head of the queue the flusher is encoding (never dropped)
        self._stalled_at: int | None = None  # `written` when appends last gave up waiting for room
        self._closing = False
        self._markers = 0  # flush markers queued and not yet reached
        # Re-entrant: a signal handler may flush while this thread is inside flush() (see _runtime).
        self._marker_lock = threading.RLock()
        # Held while a batch is written: fork waits for it, so a child never inherits a sink (or SQLite) lock
        # taken mid-write by the parent's flusher.
        self._work_lock = threading.Lock()
        self._start_lock = threading.RLock()
        self.written = 0  # records every sink accepted (flusher thread only)
        self.dropped = 0  # records lost, with the reason logged
        self.redactor = redactor
        self.redacted = 0  # values stored as "REDACTED" (flusher thread only)
        self.sink_failures: dict[str, int] = {}
        RUNTIME.live_buffers.add(self)
        # multiprocessing children end with os._exit (no atexit): flush there through its finalizers instead.
        multiprocessing.util.register_after_fork(self, _finalize_in_child)

    # ---- producer side (hot path) -------------------------------------------------------------------------
    def emit(self, record: dict) -> None:
        """Queue one record: the public entry point of the pipeline (capture, adapters, objects, integrations).

        ``record`` is a plain dict with a ``type`` (``"task"``, ``"workflow"``, ``"agent"``, ...) and its id key;
        values may be any Python object (they are made JSON-clean on the flusher thread). Never raises; may wait
        briefly when the buffer is full. Generated capture wrappers inline this body (:data:`EMIT_INLINE`).
        """
        q = self._queue
        q.append(record)
        if len(q) >= self._kick_at:
            self._kick(len(q))

    append = emit  # the older name, kept for callers that used it

    def extend(self, records: Sequence[dict]) -> None:
        """Queue several records at once."""
        q = self._queue
        q.extend(records)
        if len(q) >= self._kick_at:
            self._kick(len(q))

    def _kick(self, pending: int) -> None:
        if self._thread is None:
            self._start()
        # Wake the flusher once per batch_size records, not on every append while it is busy (Event.set takes a
        # lock): the next kick comes a batch later, or at max_size, where appends wait for room.
        self._kick_at = min(pending + self.batch_size, self.max_size)
        if not self._wake.is_set():
            self._wake.set()
        if pending >= self.max_size:
            self._wait_for_room()

    def _wait_for_room(self) -> None:
        # Backpressure: wait while the flusher makes progress; give up only after full_wait_secs without any, and
        # once given up, wait no more until the flusher delivers again (else every append would wait that long).
        if not self._closing and self._thread is not None and not self._thread.is_alive() and not self._start():
            return  # the flusher died and none can start (interpreter exit): the final flush drains the queue
        q = self._queue
        progress = self.written
        stalled = self._stalled_at == progress
        deadline = time.monotonic() + (0 if stalled else self.full_wait_secs)
        while len(q) >= self.max_size:
            if self.written != progress:
                progress = self.written
                self._stalled_at = None
                deadline = time.monotonic() + self.full_wait_secs
            if time.monotonic() > deadline or threading.current_thread() is self._thread:
                self._stalled_at = progress
                # The flusher is stuck; keep the newest records out rather than blocking the user forever.
                excess = min(len(q) - self.max_size + 1, len(q) - self._held)
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
                if lost and not stalled:
                    report_internal_error("buffer full", RuntimeError(
                        f"{lost} record(s) dropped: the buffer stayed full, with no record delivered, for "
                        f"{self.full_wait_secs}s (buffer.full_wait_secs); records are dropped without waiting "
                        "until the flusher delivers again"))
                return
            self._wake.set()
            time.sleep(0.001)

    @property
    def pending(self) -> int:
        """Records queued and not yet delivered."""
        return max(0, len(self._queue) - self._markers)

    # ---- control ------------------------------------------------------------------------------------------
    def _start(self) -> bool:
        """Start the flusher thread unless it runs; False when no thread can be started (Python 3.12+ refuses new
        threads at interpreter exit): the caller then drains the queue itself."""
        with self._start_lock:
            if self._thread is None or not self._thread.is_alive():
                self._closing = False
                thread = threading.Thread(target=self._run, name="flowcept-flusher", daemon=True)
                self._thread = thread
                try:
                    thread.start()
                except RuntimeError:
                    self._thread = None
                    return False
        return True

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every record appended before this call has gone through the sinks.

        Returns:
            True when done, False when ``timeout`` passed first.
        """
        marker = _Marker()
        with self._marker_lock:
            self._markers += 1
        self._queue.append(marker)
        if (self._thread is None or not self._thread.is_alive()) and not self._start():
            self._drain()  # no flusher can run (interpreter exit): this thread writes, marker included
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
        RUNTIME.live_buffers.discard(self)
        return done

    def is_flusher_thread(self) -> bool:
        """Whether the calling thread is this buffer's flusher (which must never wait on itself)."""
        return threading.current_thread() is self._thread

    # ---- fork (called by flowcept._runtime.Runtime) ---------------------------------------------------------
    def hold_for_fork(self, timeout: float) -> bool:
        """Wait for the batch being written and hold further writes; True when held (then call
        :meth:`release_after_fork` in the parent)."""
        return self._work_lock.acquire(timeout=timeout)

    def release_after_fork(self) -> None:
        """Let the flusher write again (parent side of a fork)."""
        self._work_lock.release()

    def reset_after_fork(self) -> None:
        """In a forked child: an empty queue and no flusher (it restarts on first use)."""
        # The flusher thread did not survive the fork; records queued by the parent are the parent's to send.
        self._queue = deque()
        self._markers = 0
        self._marker_lock = threading.RLock()
        self._work_lock = threading.Lock()
        self._wake = threading.Event()
        self._start_lock = threading.RLock()
        self._thread = None
        self._kick_at = 0
        self._held = 0
        self._stalled_at = None

    # ---- flusher thread -----------------------------------------------------------------------------------
    def _run(self) -> None:
        from flowcept.context import suppress_capture

        suppress_capture()
        wake, interval = self._wake, self.flush_interval_secs
        while True:
            wake.wait(interval)
            wake.clear()
            try:
                self._drain()
            except Exception as exc:  # noqa: BLE001 - a dead flusher would strand every record queued after it
                report_internal_error("draining the buffer", exc)  # what is still queued is drained next time
            self._kick_at = self.batch_size  # drained: the next full batch wakes this thread
            if self._closing and not self._queue:
                return

    def _drain(self) -> None:
        q, size = self._queue, self.batch_size
        while q:
            n = min(len(q), size)
            # Read the marker count after the length: a marker among the first n items was counted before.
            if not self._markers:
                # Encode the first n records while they keep their place in the queue; room is made when the sinks
                # start writing (_export), so that producers waiting for room capture while the store writes without
                # the GIL instead of competing with the encoding for it (bench/bench_core.py, flat out).
                self._held = n
                with self._work_lock:
                    self._export(_leading(q, n), dequeue=n)
                continue
            batch = []
            marker = None
            while q and len(batch) < size:
                item = q.popleft()
                if type(item) is _Marker:
                    marker = item
                    break
                batch.append(item)
            if batch:
                with self._work_lock:
                    self._export(batch)
            if marker is not None:
                with self._marker_lock:
                    self._markers -= 1
                for sink in self.sinks:
                    try:
                        sink.flush()
                        take_failures = getattr(sink, "take_failures", None)  # sinks that write on a thread
                        if take_failures is not None and (failed := take_failures()):
                            self.sink_failures[sink.name] = self.sink_failures.get(sink.name, 0) + failed
                    except Exception as exc:  # noqa: BLE001
                        report_internal_error(f"flushing {sink.name}", exc)
                marker.event.set()

    def _export(self, records: list, dequeue: int = 0) -> None:
        """Encode ``records`` and write them to every sink; ``dequeue``: how many of them still lead the queue
        (removed once encoded)."""
        try:
            batch = self._redacted_batch(records)
        finally:
            q = self._queue
            for _ in repeat(None, dequeue):
                q.popleft()
            self._held = 0
        # The sinks take the encoded bytes: free the records now (the caller's list too), not after the store's
        # write, so that the cyclic GC of the capturing threads does not keep scanning them meanwhile.
        records.clear()
        if not batch.count:
            return
        lost = 0
        for sink in self.sinks:
            try:
                n = sink.write(batch)
            except Exception as exc:  # noqa: BLE001
                n = len(batch)
                report_internal_error(f"writing to {sink.name}", exc)
            if n:
                self.sink_failures[sink.name] = self.sink_failures.get(sink.name, 0) + n
                if getattr(sink, "primary", False):
                    lost = max(lost, n)
        self.dropped += lost
        self.written += len(batch) - lost

    def _redacted_batch(self, records: list) -> EncodedBatch:
        """``records`` redacted (when a redactor is set) and encoded; the list is changed in place to what is
        stored. Records that cannot be encoded, and a batch whose redaction fails (unredacted records must not be
        written), are dropped and counted."""
        if self.redactor is None:
            batch, bad = _encoded(records)
        else:
            originals = records.copy()
            redacted = self._redact(records)
            conversions = RUNTIME.untracked_conversions
            batch, bad = _encoded(records)
            if RUNTIME.untracked_conversions != conversions:
                # Encoding turned an object the quick check let through into a container: look inside it too.
                records[:] = originals
                redacted = self._redact(records, thorough=True)
                batch, bad = _encoded(records)
            self.redacted += redacted
        self.dropped += bad
        return batch

    def _redact(self, records: list, thorough: bool = False) -> int:
        # Secrets by key name, on this thread so capture never pays for it (flowcept/redact.py).
        try:
            return self.redactor(records, thorough=True) if thorough else self.redactor(records)
        except Exception as exc:  # noqa: BLE001
            report_internal_error("redacting records", exc)
            self.dropped += len(records)
            records.clear()
            return 0


def _encoded(records: list) -> tuple[EncodedBatch, int]:
    """The batch of ``records`` and how many were left out because they cannot be encoded."""
    try:
        return encode_batch(records), 0
    except Exception as exc:  # noqa: BLE001 - one bad record must not sink the batch
        report_internal_error("encoding records", exc)
    good = []
    for record in records:
        try:
            encode_batch([record])
            good.append(record)
        except Exception:  # noqa: BLE001
            pass
    return encode_batch(good), len(records) - len(good)


def _finalize_in_child(buffer: BatchBuffer) -> None:
    multiprocessing.util.Finalize(buffer, buffer.close, args=(10.0,), exitpriority=100)
