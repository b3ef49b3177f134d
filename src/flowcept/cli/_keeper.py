"""``flowcept keeper``: run the persistence consumer in this process until SIGTERM or SIGINT."""

from __future__ import annotations

import logging

import click

from flowcept.cli._common import settings_of
from flowcept.errors import ConfigError


@click.command()
@click.option("--consumer", metavar="NAME", help="This keeper's name in the consumer group (default host:pid:random).")
@click.option("--claim-idle-secs", type=click.FloatRange(min=0), default=30.0, show_default=True,
              help="Claim stream entries another keeper left unacknowledged this long (Redis; RabbitMQ "
                   "redelivers them by itself).")
@click.option("-q", "--quiet", is_flag=True, help="Log warnings only.")
@click.pass_context
def keeper(ctx: click.Context, consumer: str | None, claim_idle_secs: float, quiet: bool) -> None:
    """Read records from the message queue (mq) and write them to the store.

    Needs mq.enabled: true (mq.type redis or rabbitmq) and a database. Several keepers share the work without
    duplicates.
    SIGTERM or Ctrl-C finishes and acknowledges the batch in hand, then exits 0.
    """
    settings = settings_of(ctx)
    try:
        from flowcept.keeper import run_keeper
    except ImportError as exc:  # the keeper ships with the redis transport; a partial install may lack it
        raise click.ClickException(f"the keeper is not available in this installation ({exc})") from exc
    if not settings.mq.enabled:
        raise ConfigError("the keeper reads the message queue; set mq.enabled: true (and mq.type: redis or "
                          "rabbitmq)", key="mq.enabled")
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    source = "RabbitMQ exchange" if settings.mq.type == "rabbitmq" else "stream"
    click.echo(f"flowcept keeper: {source} {settings.mq.channel!r} -> {settings.databases.store_kind or 'no'} store; "
               "Ctrl-C or SIGTERM to stop", err=True)
    stats = run_keeper(settings, None, consumer=consumer, claim_idle_secs=claim_idle_secs, handle_signals=True)
    click.echo(f"keeper stopped: {stats.records} records in {stats.entries} entries stored"
               f" ({stats.claimed} claimed from other keepers)", err=True)
