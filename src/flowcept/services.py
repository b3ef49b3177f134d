"""The services the settings enable (the store, the message queue) and how to check that each answers.

Used by ``flowcept status`` and by ``Flowcept.services_status()`` / ``services_alive()``.
"""

from __future__ import annotations

import os
import tempfile
from typing import Callable


def _check_sqlite(path: str) -> str:
    from flowcept.store.sqlite import SqliteStore

    path = os.path.expanduser(path)
    if not os.path.exists(path):
        # Probe by writing (os.access says yes to root even where nothing can be created, e.g. under /proc).
        folder = os.path.dirname(os.path.abspath(path))
        from flowcept._files import make_private_dir

        make_private_dir(folder)  # the store's folder: 0700, as the store itself makes it
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".flowcept-status-"):
            pass
        return "ok (the file will be created on first use)"
    if not os.access(path, os.W_OK):
        raise OSError(f"{path} is not writable")
    with SqliteStore(path) as store:
        return f"ok ({store.count('tasks')} tasks, {store.count('workflows')} workflows)"


def _check_postgres(dsn: str) -> str:
    from flowcept.store.postgres import PostgresStore

    with PostgresStore(dsn, connect_timeout=3) as store:
        version = store.ping()
        return f"ok (PostgreSQL {version}; {store.count('tasks')} tasks, {store.count('workflows')} workflows)"


def _check_redis(mq) -> str:
    from flowcept.transport.redis import connect, redis_errors

    client = connect(mq)
    try:
        with redis_errors("ping"):
            client.ping()
            info = client.info("server")
            length = client.xlen(mq.channel) if client.exists(mq.channel) else 0
        return f"ok (Redis {info.get('redis_version', '?')}; stream {mq.channel!r} holds {length} entries)"
    finally:
        client.close()


def _check_rabbitmq(mq) -> str:
    from flowcept.errors import TransportError
    from flowcept.transport.rabbitmq._amqp import group_queue, queue_length, server_version

    version, queue = server_version(mq), group_queue(mq)
    try:
        waiting = f"queue {queue!r} holds {queue_length(mq, queue)} batches"
    except TransportError:  # no such queue yet: nothing was published
        waiting = f"queue {queue!r} not created yet"
    return f"ok (RabbitMQ {version}; {waiting})"


def service_checks(settings) -> list[tuple[str, str, Callable[[], str], str]]:
    """(service, where, check, fix) for every configured service."""
    out = []
    shown = settings.to_dict(redact=True)  # URIs with their passwords redacted
    dbs = settings.databases
    if settings.project.db_flush_mode == "offline":
        pass
    elif dbs.store_kind == "postgres":
        pg = dbs.postgres
        where = shown["databases"]["postgres"]["uri"] or f"{pg.host}:{pg.port}/{pg.dbname}"
        out.append(("store", f"postgres {where}", lambda: _check_postgres(pg.dsn),
                    "start PostgreSQL, or fix databases.postgres (FLOWCEPT_POSTGRES_URI / _HOST / _PORT / _USER / "
                    "_PASSWORD); install the driver with pip install 'flowcept[postgres]'"))
    elif dbs.store_kind == "sqlite":
        out.append(("store", f"sqlite {dbs.sqlite.path}", lambda: _check_sqlite(dbs.sqlite.path),
                    "point databases.sqlite.path (FLOWCEPT_SQLITE_PATH) at a writable location"))
    mq = settings.mq
    if mq.enabled:
        where = shown["mq"]["uri"] or f"{mq.host}:{mq.port}"
        if mq.type == "rabbitmq":
            from flowcept.transport.rabbitmq._amqp import where as rabbit_where

            out.append(("mq", f"rabbitmq {shown['mq']['uri'] or rabbit_where(mq)}", lambda: _check_rabbitmq(mq),
                        "start RabbitMQ, or fix mq.host / mq.port / mq.username / mq.password / mq.vhost / mq.uri "
                        "(MQ_HOST, MQ_PORT, MQ_USERNAME, MQ_VHOST, MQ_URI); install the client with pip install "
                        "'flowcept[rabbitmq]'"))
        else:
            out.append(("mq", f"redis {where}", lambda: _check_redis(mq),
                        "start Redis (redis-server), or fix mq.host / mq.port / mq.uri (MQ_HOST, MQ_PORT, MQ_URI); "
                        "install the client with pip install 'flowcept[redis]'"))
    return out


def services_status(settings) -> dict[str, str]:
    """``{service: "ok" | "unavailable"}`` for every service the settings enable (``store``, ``mq``)."""
    out = {}
    for service, _where, check, _fix in service_checks(settings):
        try:
            check()
            out[service] = "ok"
        except Exception:  # noqa: BLE001 - any failure means the service does not answer
            out[service] = "unavailable"
    return out
