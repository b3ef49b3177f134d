"""``flowcept export``: a stored workflow as W3C PROV, a Provenance Run RO-Crate or OpenLineage events."""

from __future__ import annotations

import click

from flowcept.cli._common import settings_of, writes_to

_FORMATS = ("prov-json", "prov-n", "prov-o", "ro-crate", "openlineage")


@click.command()
@click.option("-F", "--format", "fmt", type=click.Choice(_FORMATS), required=True, help="What to write.")
@click.option("-w", "--workflow-id", required=True, help="The workflow to export.")
@click.option("-o", "--output", metavar="PATH", help="Output file (a folder, or a .zip, for ro-crate); missing "
                                                     "folders are created.")
@click.option("--url", metavar="URL", help="openlineage: also POST every event to this Marquez-compatible endpoint "
                                          "(http://host:port posts to /api/v1/lineage).")
@click.option("--match-values", is_flag=True, help="Plain scalar values shared by two tasks also count as data flow.")
@click.option("--license", "license_", metavar="URL", help="ro-crate: license of the crate's content.")
@click.option("--namespace", default="flowcept", show_default=True, help="openlineage: job and dataset namespace.")
@click.pass_context
def export(ctx: click.Context, fmt: str, workflow_id: str, output: str | None, url: str | None, match_values: bool,
           license_: str | None, namespace: str) -> None:
    """Export one workflow from the configured store.

    Example: flowcept export --format prov-json --workflow-id 1b2c... -o run.prov.json
    """
    if output is None and not (fmt == "openlineage" and url):
        raise click.UsageError("give -o/--output (or --url for openlineage)")
    from flowcept.errors import ConfigError
    from flowcept.export import export_workflow
    from flowcept.store import make_store

    store = make_store(settings_of(ctx), for_reading=True)
    if store is None:
        raise ConfigError("no database is enabled: set databases.sqlite.enabled or databases.postgres.enabled",
                          key="databases")
    writes_to(ctx, output)
    try:
        result = export_workflow(workflow_id, fmt, output, store=store, url=url, match_values=match_values,
                                 license=license_, namespace=namespace)
    finally:
        store.close()
    where = " and ".join(x for x in (result.get("output"), url) if x)
    count = result.get("events", result.get("tasks"))
    click.echo(f"wrote {fmt} of workflow {workflow_id} to {where}" + (f" ({count} items)" if count is not None
                                                                       else ""))
