"""``flowcept serve`` (also ``flowcept ui``): the read-only web service and UI over the configured store."""

from __future__ import annotations

import click

from flowcept.cli._common import settings_of


@click.command()
@click.option("--host", default=None, help="Bind address (default web_server.host, 127.0.0.1). Any address other "
              "than loopback needs a token.")
@click.option("--port", type=int, default=None, help="Port (default web_server.port, 8008).")
@click.option("--token", default=None, envvar="FLOWCEPT_WEB_TOKEN",
              help="Token every request must carry (default web_server.token; env FLOWCEPT_WEB_TOKEN).")
@click.pass_context
def serve(ctx: click.Context, host: str | None, port: int | None, token: str | None) -> None:
    """Serve the provenance UI and REST API (http://127.0.0.1:8008/ by default) until Ctrl+C."""
    from flowcept.web.server import serve as run

    run(settings_of(ctx), host=host, port=port, token=token)
