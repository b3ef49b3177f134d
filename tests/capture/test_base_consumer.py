"""Custom consumers (BaseConsumer) receive every captured record, embedded or through Redis."""

from __future__ import annotations

import threading
import time

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


class Reference(BaseConsumer):
    """Written as the reference's consumer examples are: super().__init__(), a handler that returns a bool."""

    def __init__(self, stop_after: int | None = None):
        super().__init__()
        self.stop_after = stop_after
        self.tasks: list = []

    def message_handler(self, msg: dict) -> bool:
        if msg.get("type") == "task":
            self.tasks.append(msg["used"]["x"])
        return self.stop_after is None or len(self.tasks) < self.stop_after


def test_reference_start_and_stop_consumption():
    """start() in a thread of its own (daemon=False by default) receives records until stop_consumption()."""
    consumer = Reference()
    assert consumer.start() is consumer
    assert consumer._thread is not None and consumer._thread.daemon is False
    with Flowcept():
        for i in range(4):
            inc(i)
    consumer.stop_consumption()
    assert sorted(consumer.tasks) == [0, 1, 2, 3]
    assert consumer._thread is None


def test_reference_start_as_a_thread_target():
    """threading.Thread(target=consumer.start, kwargs={"daemon": True}) subscribes and consumes as well."""
    consumer = Reference()
    starter = threading.Thread(target=consumer.start, kwargs={"daemon": True})
    starter.start()
    starter.join(10)
    assert consumer._thread is not None and consumer._thread.daemon is True
    with Flowcept():
        for i in range(3):
            inc(i)
    consumer.stop_consumption()
    assert sorted(consumer.tasks) == [0, 1, 2]


def test_handler_returning_false_stops_it():
    """A handler that returns False ends the consumer: later records are not handed to it."""
    consumer = Reference(stop_after=2)
    consumer.start()
    thread = consumer._thread
    with Flowcept():
        for i in range(6):
            inc(i)
    thread.join(10)
    assert not thread.is_alive()
    assert len(consumer.tasks) == 2
    consumer.stop_consumption()  # idempotent after it stopped itself


def test_start_not_threaded_runs_in_the_caller_until_stopped():
    """start(threaded=False) consumes in the calling thread and returns once the handler says stop."""
    consumer = Reference(stop_after=3)
    runner = threading.Thread(target=consumer.start, kwargs={"threaded": False})
    runner.start()
    for _ in range(1000):  # subscribed (in the runner thread) before anything is captured
        if consumer._tap is not None:
            break
        time.sleep(0.01)
    with Flowcept():
        for i in range(5):
            inc(i)
    runner.join(10)
    assert not runner.is_alive()
    assert len(consumer.tasks) == 3


def test_agent_context_manager_is_not_a_false_consumer():
    """BaseAgentContextManager no longer claims to be a BaseConsumer it never initialised."""
    from flowcept.flowceptor.consumers.agent.base_agent_context_manager import BaseAgentContextManager

    assert not issubclass(BaseAgentContextManager, BaseConsumer)
    mgr = BaseAgentContextManager()
    assert mgr.message_handler({"type": "task", "task_id": "t"}) is True
    assert mgr.context.tasks == [{"type": "task", "task_id": "t"}]
