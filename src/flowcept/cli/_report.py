"""``flowcept report``: the workflow card (markdown) or the provenance report (PDF, HTML) of a run."""

from __future__ import annotations

import click

from flowcept.cli._common import settings_of, writes_to


@click.command()
@click.option("-t", "--type", "report_type", type=click.Choice(["workflow_card", "provenance_report"]),
              help="Default: workflow_card for markdown, provenance_report for pdf and html.")
@click.option("-F", "--format", "fmt", type=click.Choice(["markdown", "pdf", "html"]), default="markdown",
              show_default=True)
@click.option("-o", "--output", metavar="PATH", help="Default: WORKFLOW_CARD.md / PROVENANCE_REPORT.pdf|html; "
                                                     "missing folders are created.")
@click.option("-i", "--input-path", metavar="JSONL", type=click.Path(exists=True, dir_okay=False),
              help="Read records from a JSONL buffer file instead of the store.")
@click.option("-w", "--workflow-id", help="Read this workflow from the store.")
@click.option("-c", "--campaign-id", help="Read every workflow of this campaign from the store.")
@click.option("--print", "print_markdown", is_flag=True, help="Also print the card to the terminal.")
@click.pass_context
def report(ctx: click.Context, report_type: str | None, fmt: str, output: str | None, input_path: str | None,
           workflow_id: str | None, campaign_id: str | None, print_markdown: bool) -> None:
    """Write a report of a run (from the store with --workflow-id/--campaign-id, or from a JSONL file)."""
    from flowcept.report import REPORT_KINDS, generate_report

    report_type = report_type or ("workflow_card" if fmt == "markdown" else "provenance_report")
    if (report_type, fmt) not in REPORT_KINDS:
        raise click.UsageError(f"--type {report_type} does not come as --format {fmt}")
    if input_path and (workflow_id or campaign_id):
        raise click.UsageError("give either --input-path or --workflow-id/--campaign-id")
    store = None
    if workflow_id or campaign_id:
        from flowcept.cli._common import open_store

        store = open_store(settings_of(ctx))
    output = writes_to(ctx, output or REPORT_KINDS[(report_type, fmt)])
    try:
        result = generate_report(report_type, fmt, print_markdown=print_markdown,
                                 output_path=output, input_jsonl_path=input_path,
                                 workflow_id=workflow_id, campaign_id=campaign_id, store=store)
    except ValueError as exc:
        from flowcept.errors import FlowceptError

        if isinstance(exc, FlowceptError):
            raise
        raise click.UsageError(str(exc)) from exc
    finally:
        if store is not None:
            store.close()
    click.echo(f"wrote {result['output']} ({result['tasks']} tasks, {result['activities']} activities)")
