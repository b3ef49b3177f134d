"""Reports of a run: the markdown workflow card, and the provenance report as PDF or self-contained HTML.

::

    records (list) ─┐
    JSONL file ─────┼─▶ RecordSource ─▶ _stats.collect (one pass) ─▶ card sections ─┬▶ markdown
    store (wf/camp) ┘                                               └▶ plot data ──┼▶ PDF  (reportlab, matplotlib)
                                                                                   └▶ HTML (plotly, JS inlined)
"""

from __future__ import annotations

import os
from typing import Any, Iterable, Mapping

__all__ = ["generate_report", "render_workflow_card", "REPORT_KINDS"]

#: (report_type, format) -> default output file name.
REPORT_KINDS = {
    ("workflow_card", "markdown"): "WORKFLOW_CARD.md",
    ("provenance_report", "pdf"): "PROVENANCE_REPORT.pdf",
    ("provenance_report", "html"): "PROVENANCE_REPORT.html",
}


def render_workflow_card(source: Any) -> str:
    """The markdown workflow card of a :class:`flowcept.export._source.RecordSource`."""
    from flowcept.report._stats import collect
    from flowcept.report.card import card_sections, render_markdown

    return render_markdown(*card_sections(collect(source)))


def _read_jsonl(path: str) -> tuple[list[dict], int]:
    import orjson

    records, skipped = [], 0
    with open(path, "rb") as fh:
        for line in fh:
            if not line.strip():
                continue
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError:
                skipped += 1
                continue
            if isinstance(record, dict):
                records.append(record)
            else:
                skipped += 1
    return records, skipped


def _open_source(input_jsonl_path, records, workflow_id, campaign_id, store=None):
    """``(source, input_mode, skipped_lines, store to close or None)`` for exactly one input mode."""
    from flowcept.export._source import RecordsSource, StoreSource

    given = [name for name, value in (("input_jsonl_path", input_jsonl_path), ("records", records),
                                      ("workflow_id/campaign_id", workflow_id or campaign_id)) if value is not None]
    if len(given) > 1:
        raise ValueError(f"give exactly one input: input_jsonl_path, records, or workflow_id/campaign_id "
                         f"(got {', '.join(given)})")
    if records is not None:
        return RecordsSource(records), "records", 0, None
    if (workflow_id is not None or campaign_id is not None) and store is not None:
        return StoreSource(store, workflow_id=workflow_id, campaign_id=campaign_id), "db", 0, None
    if workflow_id is not None or campaign_id is not None:
        from flowcept.settings import get_settings
        from flowcept.store import make_store

        store = make_store(get_settings(), for_reading=True)
        if store is None:
            raise ValueError("workflow_id/campaign_id read the store, but no database is enabled "
                             "(databases.sqlite or databases.postgres); pass input_jsonl_path or records instead")
        from flowcept._runtime import flush_pending

        flush_pending()  # read your writes: what this process captured is in the store first
        try:
            return StoreSource(store, workflow_id=workflow_id, campaign_id=campaign_id), "db", 0, store
        except BaseException:
            store.close()
            raise
    if input_jsonl_path is None:
        from flowcept.settings import get_settings

        input_jsonl_path = get_settings().project.dump_buffer.path
        if not os.path.exists(input_jsonl_path):
            raise ValueError(f"no input given and no buffer file at {input_jsonl_path}: give input_jsonl_path, "
                             "records, workflow_id or campaign_id")
    loaded, skipped = _read_jsonl(input_jsonl_path)
    return RecordsSource(loaded), "jsonl", skipped, None


def generate_report(report_type: str = "workflow_card", format: str = "markdown", print_markdown: bool = False,
                    output_path: str | None = None, input_jsonl_path: str | None = None,
                    records: Iterable[Mapping] | None = None, workflow_id: str | None = None,
                    campaign_id: str | None = None, *, store: Any = None) -> dict:
    """Write a report of a run and return what it contained (parameters in the reference's order).

    Args:
        report_type: ``"workflow_card"`` (format ``"markdown"``) or ``"provenance_report"`` (``"pdf"`` or
            ``"html"``).
        format: see ``report_type``.
        output_path: where to write (missing parent folders are created). Default: the markdown card is returned
            in the stats (``markdown``) and not written; PDF and HTML go to ``PROVENANCE_REPORT.pdf`` / ``.html``
            in the working directory.
        input_jsonl_path: read records from this JSONL file (a buffer file); lines that do not parse are counted
            in ``skipped_lines``.
        records: read these record dicts.
        workflow_id: read this workflow from the configured store.
        campaign_id: read every workflow of this campaign from the store.
        print_markdown: also print the markdown card to stdout (rendered with ``rich`` when installed).
        store: with ``workflow_id``/``campaign_id``, read this store instead of the one the settings enable.

    Give at most one of ``input_jsonl_path``, ``records``, ``workflow_id``/``campaign_id``; none reads the
    configured buffer file (``project.dump_buffer.path``).

    Returns:
        ``{report_type, format, output, input_mode (jsonl|records|db), skipped_lines, workflows, tasks,
        activities, status_counts}`` plus ``markdown`` (the card, for markdown) or ``pages``/``plots``.

    Raises:
        ValueError: an unknown report_type/format pair, or more than one input mode, or no input.
        ConfigError: the workflow or campaign id is not in the store (the message names it).
    """
    kind = (report_type, format)
    if kind not in REPORT_KINDS:
        known = ", ".join(f"{t}+{f}" for t, f in REPORT_KINDS)
        raise ValueError(f"unsupported report_type={report_type!r} with format={format!r}; supported: {known}")
    from flowcept.export import make_parent
    from flowcept.report._stats import collect
    from flowcept.report.card import card_sections, render_markdown

    source, mode, skipped, owned = _open_source(input_jsonl_path, records, workflow_id, campaign_id, store)
    try:
        stats = collect(source)
    finally:
        if owned is not None:
            owned.close()
    title, sections = card_sections(stats)
    if report_type == "provenance_report":
        title = title.replace("Workflow Card", "Provenance Report").replace("Campaign Card", "Provenance Report")
    result: dict[str, Any] = {
        "report_type": report_type, "format": format, "output": None, "input_mode": mode, "skipped_lines": skipped,
        "workflows": len(stats.workflows), "tasks": stats.n_tasks, "activities": len(stats.activities),
        "status_counts": dict(stats.status)}
    if format == "markdown":
        markdown = render_markdown(title, sections)
        result["markdown"] = markdown
        if output_path is not None:
            make_parent(output_path)
            with open(output_path, "w", encoding="utf-8") as fh:
                fh.write(markdown)
            result["output"] = str(output_path)
        if print_markdown:
            _print_markdown(markdown)
        return result
    path = str(output_path or REPORT_KINDS[kind])
    make_parent(path)
    try:
        if format == "pdf":
            from flowcept.report.pdf import write_pdf

            result.update(write_pdf(path, title, sections, stats))
        else:
            from flowcept.report.html import write_html

            result.update(write_html(path, title, sections, stats))
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] in ("matplotlib", "plotly", "reportlab"):
            from flowcept.errors import BackendUnavailableError

            raise BackendUnavailableError(f"the {format} report", "report") from exc
        raise
    result["output"] = path
    if print_markdown:
        _print_markdown(render_markdown(title, sections))
    return result


def _print_markdown(markdown: str) -> None:
    try:
        from rich.console import Console
        from rich.markdown import Markdown
    except ImportError:
        print(markdown)
        return
    Console().print(Markdown(markdown))
