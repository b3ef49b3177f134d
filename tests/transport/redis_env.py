"""Helpers for tests on the real Redis: per-test settings with a unique stream, subprocess producers, waits."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import pytest

from tests.transport.brokers import broker_settings

#: A producer process: ``python producer.py N WORKFLOW_ID`` runs N ``@flowcept_task`` calls in that workflow and
#: waits at stop until the transport confirmed them (check_safe_stops).
PRODUCER = """
import sys
from flowcept import Flowcept, flowcept_task

@flowcept_task
def double(x):
    return 2 * x

n, wf = int(sys.argv[1]), sys.argv[2]
with Flowcept(workflow_id=wf, start_persistence=False, check_safe_stops=True, save_workflow=False):
    for i in range(n):
        double(i)
"""


def redis_client():
    import redis

    return redis.Redis(host="127.0.0.1", port=6379)


def redis_settings(tmp_path, monkeypatch, *, deadline: float = 2.0, store: str = "sqlite", extra: str = "",
                   pg_dsn: str | None = None) -> dict:
    """Write settings with the redis transport on a fresh stream; returns {stream, db, spill, path}."""
    return broker_settings("redis", tmp_path, monkeypatch, deadline=deadline, store=store, extra=extra, pg_dsn=pg_dsn)


def cleanup_stream(stream: str) -> None:
    try:
        client = redis_client()
        keys = [stream, *client.scan_iter(f"{stream}:*")]
        client.delete(*keys)
    except Exception:  # noqa: BLE001 - Redis may be down in a failing test; nothing to clean then
        pass


def make_store(env: dict):
    from flowcept.settings import get_settings
    from flowcept.store import make_store as _make

    return _make(get_settings())


def wait_for(predicate, timeout: float, what: str, every: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(every)


def run_script(tmp_path, name: str, code: str, *args: str, env: dict | None = None, wait: bool = True,
               **popen):
    """Run ``code`` as a Python script in tmp_path with the test's settings (FLOWCEPT_SETTINGS_PATH)."""
    script = tmp_path / name
    script.write_text(textwrap.dedent(code))
    full_env = dict(os.environ)
    full_env.update(env or {})
    cmd = [sys.executable, str(script), *args]
    if not wait:
        return subprocess.Popen(cmd, cwd=tmp_path, env=full_env, **popen)
    return subprocess.run(cmd, cwd=tmp_path, env=full_env, capture_output=True, text=True, timeout=600)


def start_keeper_process(tmp_path, *extra: str, log_name: str = "keeper.log"):
    log = open(tmp_path / log_name, "ab")
    return subprocess.Popen([sys.executable, "-m", "flowcept.keeper", *extra], cwd=tmp_path, env=dict(os.environ),
                            stdout=log, stderr=subprocess.STDOUT)


class PrivateRedis:
    """A redis-server of this test's own on a free port, without persistence, that the test may restart (the
    shared server on 6379 is never stopped)."""

    def __init__(self, tmp_path):
        import socket

        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self.dir = tmp_path
        self.proc = None

    def start(self) -> None:
        import redis

        self.proc = subprocess.Popen(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no", "--dir", str(self.dir)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        client = redis.Redis(host="127.0.0.1", port=self.port)

        def up() -> bool:
            try:
                return bool(client.ping())
            except Exception:  # noqa: BLE001 - not listening yet
                return False

        wait_for(up, 20, "the private redis-server")

    def restart_empty(self) -> None:
        """Stop without saving and start again: the server comes back with no data and a new run id."""
        self.stop()
        self.start()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(20)
        self.proc = None
