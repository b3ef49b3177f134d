"""``flowcept settings show|init``: print the resolved settings, or write a starter settings file."""

from __future__ import annotations

import os

import click

from flowcept.cli._common import settings_of

# The starter file: the few keys people change, commented; every other key keeps its default.
TEMPLATE = """\
# flowcept settings. Only the keys you set here change; every other key keeps its built-in default.
# `flowcept settings show` prints them all (secrets redacted). Env vars override this file (e.g. MQ_HOST).

project:
  # online: records reach the store during the run; offline: only the JSONL buffer file is written.
  db_flush_mode: online
  dump_buffer:
    enabled: true              # also append every record to flowcept_buffer.jsonl in the working directory
    path: flowcept_buffer.jsonl

telemetry_capture:             # resource metrics per task (needs flowcept[telemetry]); all off by default
  cpu: false
  mem: false

mq:                            # Redis Streams between your processes and a keeper (`flowcept keeper`)
  enabled: false
  type: redis
  host: localhost
  port: 6379
  channel: interception        # the stream name

databases:
  sqlite:                      # the default store: one file, no server
    enabled: true
    path: ~/.flowcept/flowcept.sqlite
  postgres:                    # wins over sqlite when enabled (needs flowcept[postgres])
    enabled: false
    uri: postgresql://postgres@127.0.0.1:5432/flowcept
"""


@click.group()
def settings() -> None:
    """Show the resolved settings or write a starter settings file."""


@settings.command()
@click.pass_context
def show(ctx: click.Context) -> None:
    """Print the resolved settings as YAML (file + env overrides + defaults), secrets redacted."""
    import yaml

    resolved = settings_of(ctx)
    source = resolved.path if os.path.isabs(str(resolved.path)) else "built-in defaults (no settings file)"
    click.echo(f"# settings from: {source}")
    click.echo(yaml.safe_dump(resolved.to_dict(redact=True), sort_keys=False, default_flow_style=False), nl=False)


@settings.command()
@click.option("--path", "path", type=click.Path(dir_okay=False), default=None,
              help="Where to write it (default: FLOWCEPT_SETTINGS_PATH, else ~/.flowcept/settings.yaml).")
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
def init(path: str | None, force: bool) -> None:
    """Write a commented, minimal settings file."""
    from flowcept.settings import DEFAULT_SETTINGS_PATH, ENV_SETTINGS_PATH

    target = os.path.expanduser(path or os.environ.get(ENV_SETTINGS_PATH) or DEFAULT_SETTINGS_PATH)
    if os.path.exists(target) and not force:
        raise click.UsageError(f"{target} already exists; pass --force to overwrite it")
    try:
        from flowcept._files import open_private_file

        with open_private_file(target, "w") as f:  # it may hold passwords: 0600, folders 0700
            f.write(TEMPLATE)
    except OSError as exc:
        raise click.ClickException(f"cannot write {target}: {exc}") from exc
    click.echo(f"wrote {target}")
