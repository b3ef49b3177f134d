"""Many processes, crashes and outages: every record arrives exactly once (real Redis, real store)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.transport.redis_env import (REDIS_RESTART, cleanup_stream, make_store, redis_client, redis_settings,
                                       redis_up, restore_redis, run_script, start_keeper_process, wait_for)

pytestmark = pytest.mark.redis

EXAMPLE = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "distributed", "run_example.py")

PRODUCER = """
import sys, time
from flowcept import Flowcept, flowcept_task

@flowcept_task
def double(x):
    return 2 * x

n, wf = int(sys.argv[1]), sys.argv[2]
with Flowcept(workflow_id=wf, start_persistence=False, check_safe_stops=True, save_workflow=False):
    for i in range(n):
        double(i)
"""


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


@pytest.fixture(name="env")
def fixture_env(tmp_path, monkeypatch):
    env = redis_settings(tmp_path, monkeypatch)
    yield env
    cleanup_stream(env["stream"])


def test_sigterm_flushes_what_the_producer_captured(env, tmp_path):
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
        sent = sum(int(e[1][b"n"]) for e in redis_client().xrange(env["stream"]))
        assert sent <= 1  # the tasks wait in the buffer (long flush interval, huge batches)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == -signal.SIGTERM
    finally:
        if proc.poll() is None:
            proc.kill()
    from flowcept.keeper import Keeper
    from flowcept.settings import get_settings

    keeper = Keeper(get_settings()).start()
    store = make_store(env)
    try:
        wait_for(lambda: store.count("tasks", {"workflow_id": "wf-sigterm"}) == 1234, 30, "1234 tasks")
        wait_for(lambda: store.find("workflows", {"workflow_id": "wf-sigterm", "status": "FINISHED"}), 30,
                 "the signalled workflow to be FINISHED")
    finally:
        keeper.close()
        store.close()


@pytest.mark.slow
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
        assert all(p.wait(300) == 0 for p in producers)
        keeper = start_keeper_process(tmp_path, "--claim-idle-secs", "1")
        wait_for(lambda: store.count("tasks", {"workflow_id": wf}) >= 200000, 300, "200,000 tasks", every=0.5)
        time.sleep(1.0)  # let any late duplicate write land before counting
        assert store.count("tasks", {"workflow_id": wf}) == 200000
        assert stored_at_kill < 200000
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


@pytest.mark.slow
def test_redis_down_for_ten_seconds_loses_nothing(tmp_path, monkeypatch):
    """Redis is shut down (without saving) for 10 s mid-run: capture keeps its speed and every record is stored."""
    from flowcept import Flowcept, flowcept_task

    env = redis_settings(tmp_path, monkeypatch)

    @flowcept_task
    def double(x):
        return 2 * x

    per_call = []
    try:
        with Flowcept(start_persistence=True, check_safe_stops=True) as f:
            t_end = time.monotonic() + 20
            stopped = started = False
            t0 = time.monotonic()
            i = 0
            while time.monotonic() < t_end:
                t = time.perf_counter()
                for _ in range(200):
                    double(i)
                    i += 1
                per_call.append((time.perf_counter() - t) / 200)
                elapsed = time.monotonic() - t0
                if elapsed > 3 and not stopped:
                    subprocess.run(["redis-cli", "shutdown", "nosave"], check=False, capture_output=True)
                    stopped = True
                if elapsed > 13 and not started:
                    subprocess.run(REDIS_RESTART, check=True, capture_output=True)
                    wait_for(redis_up, 20, "redis to restart")
                    started = True
                time.sleep(0.01)  # ~15-20k tasks/s: a workload the keeper keeps up with in normal times
        assert stopped and started
        store = make_store(env)
        assert store.count("tasks", {"workflow_id": f.workflow_id}) == i
        store.close()
        normal = sorted(per_call[:100])[50]
        worst = sorted(per_call)[int(len(per_call) * 0.99)]
        assert worst < max(20 * normal, 200e-6), (normal, worst)
    finally:
        restore_redis()
        cleanup_stream(env["stream"])


@pytest.mark.parametrize("mode", ["redis", "embedded"])
def test_distributed_example_end_to_end(tmp_path, mode):
    """The spec's persistence_starter.py + N distributed_tasks.py store one workflow and N tasks."""
    result = subprocess.run([sys.executable, EXAMPLE, "--mode", mode, "--tasks", "3", "--workdir", str(tmp_path)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 task record(s), 1 workflow record(s)" in result.stdout


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
                slowest, cut_at = 0.0, None
                for b in range(n_batches):
                    if b == 10:
                        proxy.cut()
                        cut_at = time.monotonic()
                    if cut_at is not None and time.monotonic() - cut_at > 10:
                        proxy.start()
                        cut_at = None
                    t0 = time.perf_counter()
                    for i in range(per_batch):
                        double(b * per_batch + i)
                    slowest = max(slowest, time.perf_counter() - t0)
                    time.sleep(0.2)
                if cut_at is not None:
                    proxy.start()
            assert f.report.dropped == 0
            store = make_store(env)
            assert store.count("tasks", {"workflow_id": f.workflow_id}) == n_batches * per_batch
            xs = {t["used"]["x"] for t in store.find("tasks", {"workflow_id": f.workflow_id},
                                                        projection=["used.x"])}
            assert xs == set(range(n_batches * per_batch))
            assert slowest < 1.0  # the user's code kept its pace while the database was away
            store.close()
        finally:
            proxy.cut()
            cleanup_stream(env["stream"])



@pytest.mark.slow
def test_redis_restart_without_persistence_while_keepers_lag(tmp_path, monkeypatch):
    """No keeper runs while 60,000 tasks stream out, then Redis restarts empty: the producer resends every
    unacknowledged batch (older ones from its copies on disk) and a keeper started afterwards stores them all."""
    import glob

    from flowcept import Flowcept, flowcept_task
    from flowcept.keeper import Keeper
    from flowcept.settings import get_settings
    from flowcept.transport import redis_streams

    env = redis_settings(tmp_path, monkeypatch)
    monkeypatch.setattr(redis_streams, "RETAIN_MAX_BYTES", 256 * 1024)

    @flowcept_task
    def double(x):
        return 2 * x

    try:
        with Flowcept(start_persistence=False, check_safe_stops=False) as f:
            for i in range(60_000):
                double(i)
            f._buffer.flush(60)
            assert glob.glob(env["spill"][:-len(".jsonl")] + "_*.retained.*")  # old copies went to disk
            subprocess.run(["redis-cli", "shutdown", "nosave"], check=False, capture_output=True)
            subprocess.run(REDIS_RESTART, check=True, capture_output=True)
            wait_for(redis_up, 20, "redis to restart")
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
        restore_redis()
        cleanup_stream(env["stream"])
