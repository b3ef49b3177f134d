"""Backends by name: a registry maps a settings name to ``"module:attr"``, imported only when chosen."""

from __future__ import annotations

import importlib

from flowcept.errors import ConfigError


def load_backend(registry: dict[str, str], name: str, what: str, key: str | None = None):
    """Import the class registered under ``name``.

    Raises:
        ConfigError: ``name`` is unknown (the message lists the known ones; ``key`` names the settings key).
        BackendUnavailableError: the backend's library is not installed (raised by the backend module).
    """
    try:
        target = registry[name]
    except KeyError:
        raise ConfigError(f"unknown {what} {name!r}; known: {', '.join(sorted(registry))}",
                          key=key or what) from None
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)
