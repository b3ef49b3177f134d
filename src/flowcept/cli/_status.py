"""``flowcept status``: check each configured service and say how to fix the ones that do not answer."""

from __future__ import annotations

import os
import tempfile
from typing import Callable

import click

from flowcept.cli._common import settings_of


def _check_sqlite(path: str) -> str:
    from flowcept.store.sqlite import SqliteStore

    path = os.path.expanduser(path)
    if not os.path.exists(path):
        # Probe by writing (os.access says yes to root even where nothing can be created, e.g. under /proc).
        folder = os.path.dirname(os.path.abspath(path))
        os.makedirs(folder, exist_ok=True)
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
    from flowcept.transport.redis_streams import connect, redis_errors

    client = connect(mq)
    try:
        with redis_errors("ping"):
            client.ping()
            info = client.info("server")
            length = client.xlen(mq.channel) if client.exists(mq.channel) else 0
        return f"ok (Redis {info.get('redis_version', '?')}; stream {mq.channel!r} holds {length} entries)"
    finally:
        client.close()


def _checks(settings) -> list[tuple[str, str, Callable[[], str], str]]:
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
        out.append(("mq", f"redis {where}", lambda: _check_redis(mq),
                    "start Redis (redis-server), or fix mq.host / mq.port / mq.uri (MQ_HOST, MQ_PORT, MQ_URI); "
                    "install the client with pip install 'flowcept[redis]'"))
    return out


@click.command()
@click.pass_context
def status(ctx: click.Context) -> None:
    """Check the configured services: the store (SQLite file or PostgreSQL) and Redis when mq is enabled.

    Prints one line per service, `ok` or `unreachable: <reason>` with the fix. Exits 1 if any check fails.
    """
    settings = settings_of(ctx)
    source = settings.path if os.path.isabs(str(settings.path)) else "built-in defaults"
    click.echo(f"settings: {source}")
    if settings.project.db_flush_mode == "offline":
        click.echo("store: off (project.db_flush_mode is offline: records go to the JSONL buffer file only)")
    elif settings.databases.store_kind is None:
        click.echo("store: off (no database enabled)")
    failed = 0
    for service, where, check, fix in _checks(settings):
        try:
            result = check()
        except Exception as exc:  # noqa: BLE001 - a check reports every failure; it never ends the command
            failed += 1
            reason = " ".join(str(exc).split())
            click.echo(f"{service}: {where}: unreachable: {reason}")
            click.echo(f"  fix: {fix}")
        else:
            click.echo(f"{service}: {where}: {result}")
    if failed:
        raise click.ClickException(f"{failed} service(s) unreachable")
