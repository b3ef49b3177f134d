"""The brokers the transport contract runs on: per-test settings with unique names, backlogs, cleanup."""

from __future__ import annotations

import uuid

import pytest

from tests.conftest import write_settings

BROKERS = ["redis", "rabbitmq"]
PORTS = {"redis": 6379, "rabbitmq": 5672}


def broker_params():
    """``pytest.mark.parametrize`` values for the brokers, each with its marker."""
    return [pytest.param(kind, marks=getattr(pytest.mark, kind)) for kind in BROKERS]


def broker_settings(kind: str, tmp_path, monkeypatch, *, deadline: float = 2.0, store: str = "sqlite",
                    pg_dsn: str | None = None, port: int | None = None, extra: str = "") -> dict:
    """Write settings with the ``kind`` transport on a fresh channel (optionally through a proxy ``port``)."""
    if kind == "rabbitmq":
        pytest.importorskip("pika")
    channel = f"fc_test_{uuid.uuid4().hex[:12]}"
    db = tmp_path / "store.sqlite"
    spill = tmp_path / "spill.jsonl"
    dbs = f"  sqlite:\n    path: {db}\n"
    if store == "postgres":
        dbs += f"  postgres:\n    enabled: true\n    uri: {pg_dsn}\n"
    text = (f"mq:\n  enabled: true\n  type: {kind}\n  host: 127.0.0.1\n  port: {port or PORTS[kind]}\n"
            f"  channel: {channel}\n  spill_path: {spill}\n  reconnect_deadline_secs: {deadline}\n"
            f"databases:\n{dbs}project:\n  dump_buffer:\n    enabled: false\n{extra}")
    path = write_settings(tmp_path, text, monkeypatch)
    return {"kind": kind, "stream": channel, "channel": channel, "db": str(db), "spill": str(spill), "path": path}


def backlog(env: dict) -> int:
    """Batches the keepers have not acknowledged (with no keeper connected: every one not stored)."""
    if env["kind"] == "redis":
        from flowcept.transport.redis import DEFAULT_GROUP, backlog as redis_backlog
        from tests.transport.redis_env import redis_client

        client = redis_client()
        if not client.exists(env["channel"]):
            return 0
        return redis_backlog(client, env["channel"], DEFAULT_GROUP)
    from flowcept.settings import get_settings
    from flowcept.transport.rabbitmq import QueueReader

    reader = QueueReader(get_settings())
    try:
        return reader.backlog()
    finally:
        reader.close()


def cleanup(env: dict, groups: tuple = ()) -> None:
    """Delete the channel's stream/keys, or exchange and queues."""
    if env["kind"] == "redis":
        from tests.transport.redis_env import cleanup_stream

        cleanup_stream(env["channel"])
        return
    try:
        import pika

        conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", 5672))
        ch = conn.channel()
        for group in ("flowcept_keeper", *groups):
            ch.queue_delete(f"{env['channel']}.{group}")
        ch.exchange_delete(env["channel"])
        conn.close()
    except Exception:  # noqa: BLE001 - the broker may be unreachable in a failing test; nothing to clean then
        pass
