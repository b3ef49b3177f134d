"""Custom consumers (BaseConsumer) receive every captured record, embedded or through Redis."""

from __future__ import annotations

import threading

import pytest

from flowcept import Flowcept, flowcept_task
from flowcept.flowceptor.consumers.base_consumer import BaseConsumer


class Collector(BaseConsumer):
    def __init__(self, **kw):
        super().__init__(**kw)
        self.records: list = []
        self.got = threading.Event()

    def message_handler(self, msg: dict) -> bool:
        self.records.append(msg)
        if msg.get("type") == "workflow" and msg.get("status") == "FINISHED":
            self.got.set()
        return True


@flowcept_task
def inc(x):
    return x + 1


def test_embedded_consumer_sees_every_record():
    """With the embedded default a consumer receives this process's records (messages as captured)."""
    consumer = Collector().start_consumer()
    with Flowcept(workflow_name="tap") as f:
        for i in range(5):
            inc(i)
    assert consumer.got.wait(10)
    consumer.stop_consumer()
    tasks = [r for r in consumer.records if r["type"] == "task"]
    assert sorted(t["used"]["x"] for t in tasks) == [0, 1, 2, 3, 4]
    assert {r["workflow_id"] for r in consumer.records} == {f.workflow_id}
    assert Flowcept.db.count("tasks", {"workflow_id": f.workflow_id}) == 5  # the store still gets them


@pytest.mark.redis
def test_redis_consumer_has_its_own_group(tmp_path, monkeypatch):
    """With Redis a consumer reads through its own group: it and the keeper both see every record."""
    from tests.transport.redis_env import cleanup_stream, redis_settings

    env = redis_settings(tmp_path, monkeypatch)
    consumer = Collector(start_from="0").start_consumer()
    try:
        with Flowcept(workflow_name="stream-tap", start_persistence=True) as f:
            for i in range(3):
                inc(i)
        assert consumer.got.wait(10)
        tasks = [r for r in consumer.records if r["type"] == "task"]
        assert sorted(t["used"]["x"] for t in tasks) == [0, 1, 2]
        assert Flowcept.db.count("tasks", {"workflow_id": f.workflow_id}) == 3
    finally:
        consumer.stop_consumer()
        cleanup_stream(env["stream"])


def test_handler_errors_do_not_stop_it(caplog):
    """A handler that raises on one record is logged; later records still arrive."""
    class Flaky(Collector):
        def message_handler(self, msg):
            if msg.get("used", {}).get("x") == 1:
                raise ValueError("bad record")
            return super().message_handler(msg)

    consumer = Flaky().start_consumer()
    with Flowcept():
        for i in range(3):
            inc(i)
    assert consumer.got.wait(10)
    consumer.stop_consumer()
    assert sorted(r["used"]["x"] for r in consumer.records if r["type"] == "task") == [0, 2]
    assert "bad record" in caplog.text
