"""BatchBuffer under failure: a stuck sink, a failing redactor; exact records delivered and counted."""

from __future__ import annotations

import gc
import threading
from collections import deque

import orjson
import pytest

from flowcept.buffer import BatchBuffer, _leading

pytestmark = pytest.mark.timeout(30)


class _ListSink:
    """Keeps every written record; blocks on ``gate`` while it is clear."""

    name = "list"
    primary = True

    def __init__(self, gate: threading.Event | None = None):
        self.gate = gate
        self.records: list[dict] = []

    def write(self, batch) -> int:
        if self.gate is not None:
            self.gate.wait()
        self.records.extend(orjson.loads(batch.array()))
        return 0

    def flush(self, timeout=None) -> bool:
        return True

    def close(self) -> None:
        pass


def _ids(records):
    return [r["task_id"] for r in records]


def test_stuck_sink_drops_the_newest_and_waits_once():
    # Each overflowing append would wait full_wait_secs (2 s) if the buffer kept waiting on a stuck flusher: 40 of
    # them would run past the test's timeout. Once it gave up, it drops without waiting until the flusher delivers.
    gate = threading.Event()
    sink = _ListSink(gate)
    buffer = BatchBuffer([sink], batch_size=5, flush_interval_secs=0.01, max_size=10, full_wait_secs=2.0)
    for i in range(60):
        buffer.emit({"type": "task", "task_id": f"t{i:02d}"})
    gate.set()
    assert buffer.close(timeout=10)
    kept = _ids(sink.records)
    assert buffer.dropped > 0 and len(kept) + buffer.dropped == 60 and buffer.written == len(kept)
    # The oldest records are kept, in order; the dropped ones are the newest at the time of each overflow.
    assert kept[:10] == [f"t{i:02d}" for i in range(10)]
    assert kept == sorted(kept)


def test_failing_redactor_drops_its_batch_and_the_flusher_lives_on():
    def redactor(records):
        if any(r.get("secret") for r in records):
            raise RuntimeError("redactor bug")
        return 0

    sink = _ListSink()
    buffer = BatchBuffer([sink], batch_size=3, flush_interval_secs=0.01, redactor=redactor)
    buffer.extend([{"type": "task", "task_id": "a"}, {"type": "task", "task_id": "b", "secret": "x"}])
    assert buffer.flush(timeout=10)
    buffer.extend([{"type": "task", "task_id": "c"}, {"type": "task", "task_id": "d"}])
    assert buffer.close(timeout=10)
    # The batch holding the record the redactor failed on is not written unredacted; later batches are.
    assert _ids(sink.records) == ["c", "d"]
    assert (buffer.dropped, buffer.written) == (2, 2)


def test_batch_copy_survives_a_finalizer_that_appends():
    """The flusher copies a batch's records out of the queue while they keep their place. On Python 3.11 the cyclic
    GC runs inside the allocation that trips it, and a finalizer it runs is Python code: it may append to the queue
    (here a chain of them appends directly; another thread could do the same when the finalizer lets it take the
    GIL). The deque's iterator then raises, which once killed the flusher with every later record stranded: the
    first records are then taken from a copy of the queue, which nothing can interrupt."""
    queue = deque({"task_id": f"t{i}"} for i in range(10))

    class Link:
        """Garbage in a cycle whose finalizer appends a record and leaves the next link as garbage."""

        def __init__(self, left: int):
            self.me, self.left = self, left

        def __del__(self):
            queue.append({"task_id": f"late{self.left}"})
            if self.left:
                Link(self.left - 1)

    threshold = gc.get_threshold()
    gc.collect()
    gc.set_threshold(1)  # a collection every other allocation: one link runs during the copy
    try:
        Link(20)
        batch = _leading(queue, 5)
    finally:
        gc.set_threshold(*threshold)
    for _ in range(21):  # each collection runs the next link: finish the chain
        gc.collect()
    assert _ids(batch) == ["t0", "t1", "t2", "t3", "t4"]
    assert _ids(queue) == [f"t{i}" for i in range(10)] + [f"late{i}" for i in range(20, -1, -1)]
