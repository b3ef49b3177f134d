"""Many processes, crashes and outages: every record arrives exactly once (real Redis, real store)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.transport.brokers import broker_settings
from tests.transport.redis_env import (PRODUCER, PrivateRedis, cleanup_stream, make_store, redis_client,
                                       redis_settings, run_script, start_keeper_process, wait_for)

pytestmark = pytest.mark.redis

EXAMPLE = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "distributed", "run_example.py")


@contextlib.contextmanager
def pg_schema_uri(pg_dsn: str, port: int | None = None):
    """A private PostgreSQL schema for one test, as a URI settings files accept (optionally through a proxy port)."""
    from urllib.parse import quote

    from psycopg.conninfo import conninfo_to_dict

    from tests.store._pg import private_schema

    with private_schema(pg_dsn) as schema_dsn:
        info = conninfo_to_dict(schema_dsn)
        host, real_port = info.get("host") or "127.0.0.1", int(info.get("port") or 5432)
        yield (f"postgresql://{info.get('user', 'postgres')}@{host}:{port or real_port}/{info['dbname']}"
               f"?options={quote(info['options'])}")


def _pending_records(stream: str) -> int:
    """Records in the stream entries delivered to a keeper group and not acknowledged (read from Redis)."""
    client = redis_client()
    total = 0
    for group in client.xinfo_groups(stream):
        for pending in client.xpending_range(stream, group["name"], "-", "+", 100_000):
            entry = client.xrange(stream, pending["message_id"], pending["message_id"])
            if entry:
                total += int(entry[0][1].get(b"n", 0))
    return total


def _records_stored_by_keeper(log_path) -> int:
    """The record count a keeper process reports when it stops ("keeper stopped: N records ...")."""
    import re

    text = log_path.read_text(errors="replace")
    found = re.findall(r"keeper stopped: (\d+) records", text)
    assert found, text[-2000:]
    return int(found[-1])


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_keeper_killed_mid_stream_loses_and_duplicates_nothing(tmp_path, monkeypatch, pg_dsn):
    """4 producers x 50,000 tasks; the keeper is SIGKILLed mid-stream and restarted: exactly 200,000 records."""
    with pg_schema_uri(pg_dsn) as uri:
        _kill_keeper_mid_stream(tmp_path, monkeypatch, uri)


def _kill_keeper_mid_stream(tmp_path, monkeypatch, uri: str) -> None:
    env = redis_settings(tmp_path, monkeypatch, store="postgres", pg_dsn=uri)
    wf = f"wf-kill-{os.urandom(4).hex()}"
    keeper = start_keeper_process(tmp_path, "--claim-idle-secs", "1")
    producers = []
    try:
        # One script file each: run_script writes its file, and a shared one could be rewritten (truncated) while
        # an earlier producer's interpreter is still reading it.
        producers = [run_script(tmp_path, f"producer{k}.py", PRODUCER, "50000", wf, wait=False) for k in range(4)]
        store = make_store(env)
        wait_for(lambda: store.count("tasks", {"workflow_id": wf}) > 20000, 120, "the keeper to get going")
        keeper.kill()
        keeper.wait()
        stored_at_kill = store.count("tasks", {"workflow_id": wf})
        in_flight = _pending_records(env["stream"])  # read by the killed keeper, never acknowledged
        assert all(p.wait(300) == 0 for p in producers)
        keeper = start_keeper_process(tmp_path, "--claim-idle-secs", "1", log_name="keeper2.log")
        wait_for(lambda: store.count("tasks", {"workflow_id": wf}) >= 200000, 300, "200,000 tasks", every=0.5)
        time.sleep(1.0)  # let any late duplicate write land before counting
        assert store.count("tasks", {"workflow_id": wf}) == 200000
        assert stored_at_kill < 200000
        # Deliveries at the keeper, not only rows (an upsert hides a double delivery): the restarted keeper got
        # every record the killed one had not acknowledged, and nothing else; only records of the entries in
        # flight at the kill (stored, not yet acknowledged) may come twice.
        keeper.send_signal(signal.SIGTERM)
        assert keeper.wait(60) == 0
        delivered = _records_stored_by_keeper(tmp_path / "keeper2.log")
        assert 200000 - stored_at_kill <= delivered <= 200000 - stored_at_kill + in_flight, \
            (delivered, stored_at_kill, in_flight)
        ids = {t["task_id"] for t in store.find("tasks", {"workflow_id": wf}, projection=["task_id"])}
        assert len(ids) == 200000
        finished = store.count("tasks", {"workflow_id": wf, "status": "FINISHED"})
        assert finished == 200000
        store.close()
    finally:
        for p in producers:
            if p.poll() is None:
                p.kill()
        keeper.send_signal(signal.SIGTERM)
        keeper.wait(30)
        cleanup_stream(env["stream"])


@pytest.mark.parametrize("mode", ["redis", "embedded"])
def test_distributed_example_end_to_end(tmp_path, mode):
    """The spec's persistence_starter.py + N distributed_tasks.py store one workflow and N tasks."""
    result = subprocess.run([sys.executable, EXAMPLE, "--mode", mode, "--tasks", "3", "--workdir", str(tmp_path)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 task record(s), 1 workflow record(s)" in result.stdout


@pytest.mark.rabbitmq
@pytest.mark.postgres
def test_distributed_example_on_rabbitmq_and_postgres(tmp_path, pg_dsn):
    """The same example with mq.type rabbitmq and a PostgreSQL store: one workflow and N tasks, in PostgreSQL."""
    pytest.importorskip("pika")
    with pg_schema_uri(pg_dsn) as uri:
        result = subprocess.run([sys.executable, EXAMPLE, "--mode", "rabbitmq", "--tasks", "3", "--workdir",
                                 str(tmp_path)], capture_output=True, text=True, timeout=300,
                                env=dict(os.environ, FLOWCEPT_POSTGRES_URI=uri))
        assert result.returncode == 0, result.stdout + result.stderr
        assert "3 task record(s), 1 workflow record(s) [rabbitmq] -> OK" in result.stdout
        from flowcept.store.postgres import PostgresStore

        store = PostgresStore(uri)
        try:
            assert store.count("tasks", {"activity_id": "double"}) == 3
            assert store.count("workflows", {"name": "distributed_process_example"}) == 1
        finally:
            store.close()


@pytest.mark.slow
@pytest.mark.postgres
def test_postgres_down_for_ten_seconds_loses_nothing(tmp_path, monkeypatch, pg_dsn):
    """PostgreSQL unreachable for 10 s while tasks stream in: the keeper retries and every record lands once."""
    from flowcept import Flowcept, flowcept_task
    from tests.fix_proxy import TcpProxy

    @flowcept_task
    def double(x):
        return 2 * x

    from psycopg.conninfo import conninfo_to_dict

    info = conninfo_to_dict(pg_dsn)
    proxy = TcpProxy((info.get("host") or "127.0.0.1", int(info.get("port") or 5432)))
    proxy.start()
    with pg_schema_uri(pg_dsn, proxy.port) as uri:
        env = redis_settings(tmp_path, monkeypatch, store="postgres", pg_dsn=uri)
        n_batches, per_batch = 70, 500
        try:
            with Flowcept(workflow_name="pg-outage", start_persistence=True, check_safe_stops=True) as f:
                cut_at = None
                for b in range(n_batches):
                    if b == 10:
                        proxy.cut()
                        cut_at = time.monotonic()
                    if cut_at is not None and time.monotonic() - cut_at > 10:
                        proxy.start()
                        cut_at = None
                    for i in range(per_batch):
                        double(b * per_batch + i)
                    time.sleep(0.2)
                if cut_at is not None:
                    proxy.start()
            assert f.report.dropped == 0
            store = make_store(env)
            assert store.count("tasks", {"workflow_id": f.workflow_id}) == n_batches * per_batch
            xs = {t["used"]["x"] for t in store.find("tasks", {"workflow_id": f.workflow_id},
                                                        projection=["used.x"])}
            assert xs == set(range(n_batches * per_batch))
            store.close()
        finally:
            proxy.cut()
            cleanup_stream(env["stream"])



@pytest.mark.slow
def test_redis_restart_without_persistence_while_keepers_lag(tmp_path, monkeypatch):
    """No keeper runs while 60,000 tasks stream out, then Redis restarts empty: the producer resends every
    unacknowledged batch (older ones from its copies on disk) and a keeper started afterwards stores them all.
    Runs on a private redis-server (the shared one is never restarted)."""
    import glob

    from flowcept import Flowcept, flowcept_task
    from flowcept.keeper import Keeper
    from flowcept.settings import get_settings
    from flowcept.transport.redis import retained

    server = PrivateRedis(tmp_path)
    server.start()
    env = broker_settings("redis", tmp_path, monkeypatch, port=server.port)
    monkeypatch.setattr(retained, "RETAIN_MAX_BYTES", 256 * 1024)

    @flowcept_task
    def double(x):
        return 2 * x

    try:
        with Flowcept(start_persistence=False, check_safe_stops=False) as f:
            for i in range(60_000):
                double(i)
            f._buffer.flush(60)
            assert glob.glob(env["spill"][:-len(".jsonl")] + "_*.retained.*")  # old copies went to disk
            server.restart_empty()
            for i in range(60_000, 60_010):
                double(i)
        keeper = Keeper(get_settings()).start()
        store = make_store(env)
        try:
            wait_for(lambda: store.count("tasks", {"workflow_id": f.workflow_id}) == 60_010, 60, "60,010 tasks")
        finally:
            keeper.close()
            store.close()
        assert glob.glob(env["spill"][:-len(".jsonl")] + "_*.retained.*") == []
    finally:
        server.stop()
