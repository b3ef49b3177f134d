"""``flowcept status``: check each configured service and say how to fix the ones that do not answer."""

from __future__ import annotations

import os

import click

from flowcept.cli._common import settings_of
from flowcept.services import service_checks


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
    for service, where, check, fix in service_checks(settings):
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
