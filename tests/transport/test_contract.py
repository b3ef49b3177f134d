"""The transport contract, on every broker (Redis Streams and RabbitMQ): late keepers, shared keepers, killed
keepers, broker outages, signalled producers and exact stops all end with every record stored exactly once."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time

import orjson
import pytest

from flowcept import Flowcept, flowcept_task
from flowcept.flowceptor.consumers.base_consumer import BaseConsumer
from tests.transport.brokers import backlog, broker_params, broker_settings, cleanup
from tests.transport.redis_env import PRODUCER, make_store, run_script, start_keeper_process, wait_for


@flowcept_task
def double(x):
    return 2 * x


@pytest.fixture(name="env", params=broker_params())
def fixture_env(request, tmp_path, monkeypatch):
    env = broker_settings(request.param, tmp_path, monkeypatch)
    yield env
    cleanup(env, groups=("flowcept_consumer_Collector",))


def _produce(n: int, **kwargs) -> str:
    with Flowcept(start_persistence=False, **kwargs) as f:
        for i in range(n):
            double(i)
    return f.workflow_id


def _keeper(**kwargs):
    from flowcept.keeper import Keeper
    from flowcept.settings import get_settings

    return Keeper(get_settings(), **kwargs).start()


class TestTransportContract:
    def test_keeper_started_late_stores_everything(self, env):
        """Records published before any keeper existed are all stored once a keeper starts."""
        wf = _produce(5000)
        assert backlog(env) > 0
        store = make_store(env)
        assert store.count("tasks") == 0
        keeper = _keeper()
        try:
            wait_for(lambda: store.count("tasks", {"workflow_id": wf}) == 5000, 60, "5000 tasks")
            assert store.find("workflows", {"workflow_id": wf})[0]["status"] == "FINISHED"
            wait_for(lambda: keeper.stats.records == 5002, 10, "the keeper's count")
            assert keeper.stats.claimed == 0 and keeper.stats.rejected == 0
        finally:
            keeper.close()
            store.close()
        assert backlog(env) == 0

    def test_two_keepers_share_the_work_without_duplicates(self, env):
        """Two keepers of one group split the batches; each batch is delivered to exactly one of them."""
        keepers = [_keeper(read_count=1) for _ in range(2)]
        try:
            wf = _produce(30000, check_safe_stops=False)
            wait_for(lambda: sum(k.stats.records for k in keepers) >= 30002, 60, "all records")
            time.sleep(0.3)  # a duplicate delivery would show up in the counts now
            assert sum(k.stats.records for k in keepers) == 30002
            assert all(k.stats.entries > 0 for k in keepers)
        finally:
            for k in keepers:
                k.close()
        store = make_store(env)
        assert store.count("tasks", {"workflow_id": wf}) == 30000
        store.close()

    def test_exact_stop_with_persistence(self, env):
        """With start_persistence and check_safe_stops, every record is stored when stop() returns."""
        for _ in range(3):
            with Flowcept(start_persistence=True, check_safe_stops=True) as f:
                for i in range(7000):
                    double(i)
            store = make_store(env)
            assert store.count("tasks", {"workflow_id": f.workflow_id}) == 7000
            assert store.find("workflows", {"workflow_id": f.workflow_id})[0]["status"] == "FINISHED"
            store.close()
            assert f.report.written == 7002 and f.report.dropped == 0

    def test_a_bad_batch_never_blocks_the_queue(self, env):
        """A batch the store refuses (malformed JSON) is set aside in the rejects file; the others are stored."""
        good = [{"type": "task", "task_id": f"g{i}", "workflow_id": "wf-bad"} for i in range(3)]
        _publish_raw(env, [orjson.dumps(good[:2]), b'[{"type":"task","task_id":"x",', orjson.dumps(good[2:])],
                     [2, 1, 1])
        keeper = _keeper()
        store = make_store(env)
        try:
            wait_for(lambda: store.count("tasks", {"workflow_id": "wf-bad"}) == 3, 30, "the good records")
            wait_for(lambda: keeper.stats.rejected == 1, 30, "the bad batch to be set aside")
            rejected = [orjson.loads(line) for line in open(keeper.rejects_path, "rb")]
            assert len(rejected) == 1 and rejected[0]["body"].startswith('[{"type":"task","task_id":"x"')
        finally:
            keeper.close()
            store.close()
        assert backlog(env) == 0

    def test_custom_consumer_has_its_own_group(self, env):
        """A BaseConsumer reads through its own group: it and the keeper both see every record."""

        class Collector(BaseConsumer):
            def __init__(self):
                super().__init__()
                self.records = []

            def message_handler(self, msg):
                self.records.append(msg)
                return not (msg.get("type") == "workflow" and msg.get("status") == "FINISHED")

        consumer = Collector()
        consumer.start(daemon=True)
        try:
            with Flowcept(workflow_name="tap", start_persistence=True) as f:
                for i in range(3):
                    double(i)
            wait_for(lambda: consumer._thread is None or not consumer._thread.is_alive(), 30,
                     "the handler to stop the consumer")
            tasks = [r for r in consumer.records if r["type"] == "task"]
            assert sorted(t["used"]["x"] for t in tasks) == [0, 1, 2]
            assert Flowcept.db.count("tasks", {"workflow_id": f.workflow_id}) == 3
        finally:
            consumer.stop_consumption()

    def test_sigterm_flushes_what_the_producer_captured(self, env, tmp_path):
        """A producer killed with SIGTERM mid-run still delivers every task it captured before the signal."""
        code = """
        import sys, time
        from flowcept import Flowcept, flowcept_task

        @flowcept_task
        def double(x):
            return 2 * x

        Flowcept(workflow_id=sys.argv[1], start_persistence=False).start()
        time.sleep(0.5)  # the flusher has sent the workflow record and now sleeps for an hour
        for i in range(1234):
            double(i)
        print("captured", flush=True)
        time.sleep(60)
        """
        proc = run_script(tmp_path, "producer.py", code, "wf-sigterm", wait=False, stdout=subprocess.PIPE,
                          env={"FLOWCEPT_BUFFER_FLUSH_INTERVAL_SECS": "3600", "FLOWCEPT_BUFFER_BATCH_SIZE": "100000"})
        try:
            assert proc.stdout.readline().strip() == b"captured"
            assert backlog(env) <= 1  # the tasks wait in the buffer (long flush interval, huge batches)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == -signal.SIGTERM
        finally:
            if proc.poll() is None:
                proc.kill()
        keeper = _keeper()
        store = make_store(env)
        try:
            wait_for(lambda: store.count("tasks", {"workflow_id": "wf-sigterm"}) == 1234, 30, "1234 tasks")
            wait_for(lambda: store.find("workflows", {"workflow_id": "wf-sigterm", "status": "FINISHED"}), 30,
                     "the signalled workflow to be FINISHED")
        finally:
            keeper.close()
            store.close()

    def test_keeper_process_sigterm_reports_and_exits_0(self, env, tmp_path):
        """`python -m flowcept.keeper` finishes its batch, prints its stop report and exits 0 on SIGTERM."""
        proc = start_keeper_process(tmp_path)
        try:
            wf = _produce(2000)
            store = make_store(env)
            try:
                wait_for(lambda: store.count("tasks", {"workflow_id": wf}) == 2000, 60, "2000 tasks")
            except BaseException:
                print((tmp_path / "keeper.log").read_text(), "alive:", proc.poll() is None)  # shown on failure
                raise
            finally:
                store.close()
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(15) == 0
            assert "keeper stopped: 2002 records" in (tmp_path / "keeper.log").read_text()
        finally:
            if proc.poll() is None:
                proc.kill()

    @pytest.mark.timeout(240)
    def test_broker_cut_spills_then_replays_everything(self, env, tmp_path, monkeypatch):
        """The broker's connection is cut (a TCP proxy) for 3 s mid-run: the producer spills to its file, replays
        it once the broker answers, and stop() returns with every record stored exactly once."""
        from tests.fix_proxy import TcpProxy
        from tests.transport.brokers import PORTS

        proxy = TcpProxy(("127.0.0.1", PORTS[env["kind"]]))
        proxy.start()
        cut_env = broker_settings(env["kind"], tmp_path, monkeypatch, deadline=0.3, port=proxy.port)
        spilled_seen, n, cut_at, restored = 0, 0, None, False
        try:
            with Flowcept(start_persistence=True, check_safe_stops=True) as f:
                transport = f._buffer.sinks[-1]
                for b in range(40):
                    if b == 10:
                        proxy.cut()
                        cut_at = time.monotonic()
                    if cut_at is not None and not restored and time.monotonic() - cut_at > 3:
                        proxy.start()
                        restored = True
                    for _ in range(500):
                        double(n)
                        n += 1
                    f._buffer.flush(30)
                    spilled_seen = max(spilled_seen, transport.spilled)
                    time.sleep(0.1)
                if not restored:
                    proxy.start()
            assert spilled_seen > 0  # the cut lasted past the reconnect deadline: records went to the spill file
            assert f.report.dropped == 0
            store = make_store(cut_env)
            assert store.count("tasks", {"workflow_id": f.workflow_id}) == n == 20000
            xs = {t["used"]["x"] for t in store.find("tasks", {"workflow_id": f.workflow_id}, projection=["used.x"])}
            assert xs == set(range(n))
            store.close()
            assert not os.path.exists(transport.spill_path)  # replayed, then deleted
        finally:
            proxy.cut()
            cleanup(cut_env)

    @pytest.mark.timeout(300)
    def test_keeper_killed_mid_stream_loses_and_duplicates_nothing(self, env, tmp_path):
        """2 producers x 20,000 tasks; the keeper is SIGKILLed mid-stream and a new one started: every record is
        stored once, and the new keeper is delivered exactly the batches the killed one had not acknowledged."""
        wf = "wf-kill"
        keeper = start_keeper_process(tmp_path, "--claim-idle-secs", "1")
        producers = []
        store = make_store(env)
        try:
            producers = [run_script(tmp_path, f"producer{k}.py", PRODUCER, "20000", wf, wait=False)
                         for k in range(2)]
            wait_for(lambda: store.count("tasks", {"workflow_id": wf}) > 4000, 120, "the keeper to get going")
            keeper.kill()
            keeper.wait()
            assert all(p.wait(300) == 0 for p in producers)
            stored_at_kill = store.count("tasks", {"workflow_id": wf})
            assert stored_at_kill < 40000
            left = backlog(env)  # batches the killed keeper never acknowledged, and those never delivered
            assert left > 0
            keeper = start_keeper_process(tmp_path, "--claim-idle-secs", "1", log_name="keeper2.log")
            wait_for(lambda: store.count("tasks", {"workflow_id": wf}) >= 40000, 120, "40,000 tasks", every=0.2)
            wait_for(lambda: backlog(env) == 0, 60, "every batch acknowledged")
            keeper.send_signal(signal.SIGTERM)
            assert keeper.wait(30) == 0
            report = re.search(r"keeper stopped: (\d+) records in (\d+) entries",
                               (tmp_path / "keeper2.log").read_text())
            assert int(report.group(2)) == left  # each batch delivered once to the new keeper
            assert store.count("tasks", {"workflow_id": wf}) == 40000
            assert store.count("tasks", {"workflow_id": wf, "status": "FINISHED"}) == 40000
        finally:
            store.close()
            for p in producers:
                if p.poll() is None:
                    p.kill()
            if keeper.poll() is None:
                keeper.kill()


def _publish_raw(env: dict, bodies: list[bytes], counts: list[int]) -> None:
    """Put batches in the broker as a producer would (bypassing flowcept's producer)."""
    if env["kind"] == "redis":
        from tests.transport.redis_env import redis_client

        for i, (body, n) in enumerate(zip(bodies, counts)):
            redis_client().xadd(env["channel"], {"b": body, "n": n, "e": "json", "p": "t", "s": i})
        return
    import pika

    from flowcept.settings import get_settings
    from flowcept.transport.rabbitmq._amqp import declare_group

    conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", 5672))
    ch = conn.channel()
    declare_group(ch, get_settings().mq)
    ch.confirm_delivery()
    for i, (body, n) in enumerate(zip(bodies, counts)):
        ch.basic_publish(env["channel"], "", body, pika.BasicProperties(delivery_mode=2, headers={"n": n, "s": i}))
    conn.close()
