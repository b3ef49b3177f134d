"""``flowcept query``: find records with a Mongo-style filter; print a compact table or JSON lines."""

from __future__ import annotations

from typing import Any

import click

from flowcept.cli._common import json_option, open_store, settings_of

#: Columns of the default table per collection (a projection replaces them).
TABLE_FIELDS = {
    "tasks": ("task_id", "activity_id", "status", "started_at", "ended_at", "workflow_id"),
    "workflows": ("workflow_id", "name", "campaign_id", "user", "utc_timestamp"),
    "agents": ("agent_id", "name", "workflow_id"),
}
_MAX_WIDTH = 36


def _cell(value: Any) -> str:
    import orjson

    if value is None:
        text = ""
    elif isinstance(value, str):
        text = value
    elif isinstance(value, (dict, list)):
        text = orjson.dumps(value).decode()
    else:
        text = str(value)
    text = " ".join(text.split())
    return text if len(text) <= _MAX_WIDTH else text[:_MAX_WIDTH - 1] + "…"


def _columns(projection: Any, collection: str) -> list[str]:
    if isinstance(projection, dict):
        included = [k for k, v in projection.items() if v]
        if included:
            return included
        return [f for f in TABLE_FIELDS[collection] if f not in projection]
    if isinstance(projection, list) and projection:
        return [str(f) for f in projection]
    if isinstance(projection, str):
        return [projection]
    return list(TABLE_FIELDS[collection])


def render_table(docs: list[dict], columns: list[str]) -> str:
    """A plain-text table: a header row, a rule and one row per record."""
    from flowcept.store._filters import get_path  # not at import: `flowcept --help` stays light
    rows = [[_cell(get_path(doc, tuple(c.split('.')))) for c in columns] for doc in docs]
    widths = [max([len(c)] + [len(r[i]) for r in rows]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths)).rstrip(),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in rows]
    return "\n".join(lines)


@click.command()
@click.option("-f", "--filter", "filter_", metavar="JSON", help='Mongo-style filter, e.g. \'{"status": "FINISHED"}\'.')
@click.option("-p", "--projection", metavar="JSON", help='Fields to return: \'["task_id", "used.x"]\' or {"field": 1}.')
@click.option("--sort", metavar="JSON", help='Sort, e.g. \'[["started_at", -1]]\' or \'{"started_at": -1}\'.')
@click.option("-n", "--limit", type=click.IntRange(min=0), default=0, show_default=True, help="At most N (0: all).")
@click.option("-c", "--collection", type=click.Choice(sorted(TABLE_FIELDS)), default="tasks", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON record per line instead of a table.")
@click.pass_context
def query(ctx: click.Context, filter_: str | None, projection: str | None, sort: str | None, limit: int,
          collection: str, as_json: bool) -> None:
    """Find records in the configured store.

    Filters speak MongoDB's language ($and $or $nor $not $eq $ne $gt $gte $lt $lte $in $nin $exists $regex,
    dotted paths). Example: flowcept query -f '{"activity_id": "train", "generated.loss": {"$lt": 0.1}}'
    """
    flt = json_option(filter_, "--filter")
    proj = json_option(projection, "--projection")
    srt = json_option(sort, "--sort")
    if flt is not None and not isinstance(flt, dict):
        raise click.BadParameter("must be a JSON object", param_hint="--filter")
    from flowcept.errors import QueryError

    store = open_store(settings_of(ctx))
    try:
        docs = store.find(collection, flt, projection=proj, sort=srt, limit=limit)
    except QueryError as exc:  # the user's --filter/--projection/--sort: a usage error (exit 2)
        raise click.UsageError(str(exc)) from exc
    finally:
        store.close()
    if as_json:
        import orjson

        for doc in docs:
            click.echo(orjson.dumps(doc, option=orjson.OPT_NON_STR_KEYS).decode())
        return
    click.echo(render_table(docs, _columns(proj, collection)))
    click.echo(f"({len(docs)} {collection if len(docs) != 1 else collection[:-1]})")
