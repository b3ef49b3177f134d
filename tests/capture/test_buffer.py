"""BatchBuffer under failure: a stuck sink, a failing redactor; exact records delivered and counted."""

from __future__ import annotations

import threading

import orjson
import pytest

from flowcept.buffer import BatchBuffer

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
