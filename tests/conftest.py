"""Shared fixtures: every test runs with default settings in its own folder, HOME and SQLite store."""

from __future__ import annotations

import contextlib
import os
import subprocess

import pytest

pytest_plugins = ["tests.fix_services"]


@pytest.fixture(name="fc_env", autouse=True)
def fixture_fc_env(monkeypatch, tmp_path):
    """Isolate flowcept: no env overrides, HOME and CWD in tmp_path, fresh settings and query API."""
    from flowcept.settings import ENV_VARS
    from flowcept.testing import reset

    for var in ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.delenv("FLOWCEPT_SETTINGS_PATH", raising=False)
    monkeypatch.delenv("FLOWCEPT_USE_DEFAULT", raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path)
    reset()
    yield tmp_path
    reset()
    monkeypatch.undo()
    reset()


def write_settings(tmp_path, text: str, monkeypatch) -> str:
    """Write a settings file, point FLOWCEPT_SETTINGS_PATH at it and reload."""
    from flowcept.settings import reload_settings

    path = tmp_path / "settings.yaml"
    path.write_text(text)
    monkeypatch.setenv("FLOWCEPT_SETTINGS_PATH", str(path))
    reload_settings()
    return str(path)


def sqlite_path() -> str:
    """Where the default SQLite store lives for the current test."""
    return os.path.expanduser("~/.flowcept/flowcept.sqlite")


@contextlib.contextmanager
def killed_at_exit(proc: subprocess.Popen):
    """Run the block; a ``proc`` still alive when it ends (a failed assertion, a timeout) is killed."""
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
