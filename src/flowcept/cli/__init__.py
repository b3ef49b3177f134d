"""The ``flowcept`` command line: one click group whose subcommands are imported only when used.

::

    flowcept [--settings FILE] [--version]
    ├── keeper           run the persistence consumer (Redis stream -> store) until SIGTERM/SIGINT
    ├── status           check each configured service
    ├── query            Mongo-style filter -> table or JSON lines
    ├── ingest FILE      JSONL (buffer or spill file) -> store, idempotent
    ├── objects          list | get ID | history ID | download ID DEST: stored models, datasets, artifacts
    ├── serve | ui       the read-only web UI and REST API (extra flowcept[web])
    ├── settings show | init
    ├── export           a workflow as PROV-JSON/PROV-N/PROV-O, an RO-Crate or OpenLineage events
    └── report           workflow card (markdown) or provenance report (PDF, HTML)

Exit codes: 0 ok, 1 a flowcept error (store or broker failed...), 2 bad usage or settings (``ConfigError``) or an
output path that cannot be written (``Error: cannot write PATH: reason``). Errors go to stderr, starting with
``Error:``. Commands that write files (export, report, objects download) create the missing folders of the path.
"""

from __future__ import annotations

import importlib
from typing import Any

import click

from flowcept import __version__
from flowcept.errors import ConfigError, FlowceptError

__all__ = ["app", "main"]

#: Subcommand name -> "module:attribute"; a command module imports click and nothing heavy at its top.
COMMANDS: dict[str, str] = {
    "keeper": "flowcept.cli._keeper:keeper",
    "status": "flowcept.cli._status:status",
    "query": "flowcept.cli._query:query",
    "ingest": "flowcept.cli._ingest:ingest",
    "objects": "flowcept.cli._objects:objects",
    "settings": "flowcept.cli._settings:settings",
    "serve": "flowcept.cli._serve:serve",
    "ui": "flowcept.cli._serve:serve",
    "export": "flowcept.cli._export:export",
    "report": "flowcept.cli._report:report",
}


class FlowceptCliError(click.ClickException):
    """A flowcept error on its way out of the CLI: shown as ``Error: ...`` on stderr with its exit code."""

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code


def as_cli_error(exc: Exception, output: str | None = None) -> FlowceptCliError:
    """The one place that maps errors to exit codes: ConfigError 2, other FlowceptError 1, and an OSError of a
    command that writes ``output`` (a missing folder, a folder where a file goes...) 2, as bad input."""
    if isinstance(exc, OSError) and not isinstance(exc, FlowceptError):
        return FlowceptCliError(f"cannot write {output}: {exc.strerror or exc}", 2)
    return FlowceptCliError(str(exc), 2 if isinstance(exc, ConfigError) else 1)


class _LazyGroup(click.Group):
    """A group that imports a subcommand's module only when that subcommand is looked up."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module, _, attr = target.partition(":")
        return getattr(importlib.import_module(module), attr)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except FlowceptError as exc:
            raise as_cli_error(exc) from exc
        except OSError as exc:
            output = getattr(ctx.obj, "output", None)  # declared by a command that writes a file (writes_to)
            if output is None:
                raise
            raise as_cli_error(exc, output) from exc


class CliState:
    """What the group passes to its subcommands (``ctx.obj``)."""

    def __init__(self, settings_path: str | None):
        self.settings_path = settings_path
        self._settings = None
        #: The file or folder the running command writes (see ``flowcept.cli._common.writes_to``).
        self.output: str | None = None

    @property
    def settings(self):
        """The settings: ``--settings FILE`` when given, else the usual lookup (env, ~/.flowcept, defaults)."""
        if self._settings is None:
            from flowcept.settings import get_settings, load_settings

            self._settings = load_settings(self.settings_path) if self.settings_path else get_settings()
        return self._settings


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-s", "--settings", "settings_path", metavar="FILE", type=click.Path(dir_okay=False),
              help="Settings file to use instead of FLOWCEPT_SETTINGS_PATH or ~/.flowcept/settings.yaml.")
@click.version_option(__version__, "-V", "--version", prog_name="flowcept")
@click.pass_context
def app(ctx: click.Context, settings_path: str | None) -> None:
    """Flowcept: runtime provenance capture for workflows. Manage the keeper, check services, query records."""
    ctx.obj = CliState(settings_path)


def main() -> None:
    """Console-script entry point (``flowcept``)."""
    app(prog_name="flowcept")
