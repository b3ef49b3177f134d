"""Helpers shared by the commands: settings from the context, the configured store, JSON options."""

from __future__ import annotations

from typing import Any

import click
import orjson

from flowcept.errors import ConfigError


def settings_of(ctx: click.Context):
    """The settings chosen by the group (``--settings``) or the usual lookup."""
    return ctx.find_object(_state_class()).settings


def writes_to(ctx: click.Context, path: str | None) -> str | None:
    """Declare the file or folder the command writes: an OSError the command meets then ends it as
    ``Error: cannot write PATH: reason`` (exit 2) instead of a traceback. Returns ``path``."""
    ctx.find_object(_state_class()).output = path
    return path


def _state_class():
    from flowcept.cli import CliState

    return CliState


def open_store(settings):
    """The store the settings enable.

    Raises:
        ConfigError: no store is enabled or ``project.db_flush_mode`` is ``offline``.
    """
    from flowcept.store import make_store

    store = make_store(settings)
    if store is None:
        raise ConfigError("no database is enabled: set databases.sqlite.enabled or databases.postgres.enabled "
                          "to true and keep project.db_flush_mode: online", key="databases")
    return store


def json_option(value: str | None, name: str) -> Any:
    """Parse a JSON option value; a parse error is a usage error naming the option."""
    if value is None:
        return None
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise click.BadParameter(f"not valid JSON ({exc}): {value!r}", param_hint=name) from None
