"""``flowcept objects``: list stored objects, show one's metadata or version history, download its content."""

from __future__ import annotations

import contextlib
from typing import Iterator

import click

from flowcept.cli._common import json_option, open_store, settings_of, writes_to

_LIST_COLUMNS = ["object_id", "object_type", "version", "object_size_bytes", "storage_type", "task_id"]
_HISTORY_COLUMNS = ["version", "prev_version", "object_size_bytes", "data_sha256", "updated_at", "task_id"]


@contextlib.contextmanager
def _db(ctx: click.Context) -> Iterator:
    from flowcept.query.api import DBAPI

    store = open_store(settings_of(ctx))
    try:
        yield DBAPI(store)
    finally:
        store.close()


def _print(docs: list[dict], columns: list[str], as_json: bool, noun: str) -> None:
    import orjson

    if as_json:
        for doc in docs:
            click.echo(orjson.dumps(doc).decode())
        return
    from flowcept.cli._query import render_table

    click.echo(render_table(docs, columns))
    click.echo(f"({len(docs)} {noun}{'' if len(docs) == 1 else 's'})")


@click.group()
def objects() -> None:
    """Stored objects (models, datasets, artifacts): list, get, history, download."""


@objects.command("list")
@click.option("-f", "--filter", "filter_", metavar="JSON",
              help='Mongo-style filter, e.g. \'{"object_type": "ml_model"}\'.')
@click.option("-n", "--limit", type=click.IntRange(min=0), default=0, show_default=True, help="At most N (0: all).")
@click.option("--json", "as_json", is_flag=True, help="One JSON record per line instead of a table.")
@click.pass_context
def list_objects(ctx: click.Context, filter_: str | None, limit: int, as_json: bool) -> None:
    """The latest version of each object matching the filter, newest first."""
    flt = json_option(filter_, "--filter")
    if flt is not None and not isinstance(flt, dict):
        raise click.BadParameter("must be a JSON object", param_hint="--filter")
    from flowcept.errors import QueryError

    with _db(ctx) as db:
        try:
            docs = db.blob_object_query(flt, limit=limit, sort=[("updated_at", -1)])
        except QueryError as exc:
            raise click.UsageError(str(exc)) from exc
    _print(docs, _LIST_COLUMNS, as_json, "object")


@objects.command("get")
@click.argument("object_id")
@click.option("-v", "--version", type=click.IntRange(min=0), default=None, help="A stored version (default: latest).")
@click.pass_context
def get_object(ctx: click.Context, object_id: str, version: int | None) -> None:
    """Print one object's metadata as JSON (its content stays put: see `download`)."""
    import orjson

    with _db(ctx) as db:
        doc = db.object_store.get(object_id, version)
    click.echo(orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode())


@objects.command("history")
@click.argument("object_id")
@click.option("--json", "as_json", is_flag=True, help="One JSON record per line instead of a table.")
@click.pass_context
def history(ctx: click.Context, object_id: str, as_json: bool) -> None:
    """Every stored version of an object, newest first."""
    with _db(ctx) as db:
        docs = db.get_object_history(object_id)
    _print(docs, _HISTORY_COLUMNS, as_json, "version")


@objects.command("download")
@click.argument("object_id")
@click.argument("dest", type=click.Path(dir_okay=False, writable=True))
@click.option("-v", "--version", type=click.IntRange(min=0), default=None, help="A stored version (default: latest).")
@click.pass_context
def download(ctx: click.Context, object_id: str, dest: str, version: int | None) -> None:
    """Write an object's content to DEST (streamed, checked against its sha256 before DEST appears); missing
    folders of DEST are created."""
    from flowcept.export import make_parent

    with _db(ctx) as db:
        writes_to(ctx, dest)
        try:
            blob = db.download_object(object_id, dest, version)
        except FileNotFoundError:  # the object exists (it is looked up first) but DEST's folder does not
            make_parent(dest)  # (made only now: an unknown object leaves no folder behind)
            blob = db.download_object(object_id, dest, version)
    click.echo(f"{dest}: {blob.object_size_bytes} bytes, object {object_id} version {blob.version}, "
               f"sha256 {blob.data_sha256}")
