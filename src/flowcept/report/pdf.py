"""The provenance report as a PDF: the card's sections (reportlab) followed by the plots (matplotlib, Agg)."""

from __future__ import annotations

import io
from typing import Any

from flowcept.report._plots import draw_matplotlib, plot_data
from flowcept.report._stats import RunStats
from flowcept.report.card import Section

__all__ = ["write_pdf"]


def _table(table, styles) -> Any:
    from reportlab.lib import colors
    from reportlab.platypus import Paragraph, Table, TableStyle

    cell = styles["BodyText"].clone("cell", fontSize=7, leading=8.5)
    head = cell.clone("head", fontName="Helvetica-Bold")
    data = [[Paragraph(_escape(h), head) for h in table.header]]
    data += [[Paragraph(_escape(c), cell) for c in row] for row in table.rows]
    out = Table(data, repeatRows=1, hAlign="LEFT")
    out.setStyle(TableStyle([("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
                             ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#E8ECF4")),
                             ("VALIGN", (0, 0), (-1, -1), "TOP")]))
    return out


def _escape(text: str) -> str:
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def write_pdf(path: str, title: str, sections: list[Section], stats: RunStats) -> dict:
    """Write the report; returns ``{"pages", "plots"}``."""
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.lib.units import cm
    from reportlab.platypus import Image, PageBreak, Paragraph, SimpleDocTemplate, Spacer

    styles = getSampleStyleSheet()
    story: list[Any] = [Paragraph(_escape(title), styles["Title"])]
    plots = plot_data(stats)
    # The timeline first: it is what a reader looks for on page one.
    for i, section in enumerate(sections):
        story.append(Paragraph(_escape(section.title), styles["Heading2"]))
        for line in section.lines:
            story.append(Paragraph(("• " + _escape(line[2:])) if line.startswith("- ") else _escape(line),
                                   styles["BodyText"]))
        for table in section.tables:
            story += [_table(table, styles), Spacer(1, 6)]
        if i == 1 and plots:
            story.append(_image(plots[0], Image, cm))
    if len(plots) > 1:
        story.append(PageBreak())
        story.append(Paragraph("Plots", styles["Heading2"]))
        for plot in plots[1:]:
            story += [_image(plot, Image, cm), Spacer(1, 8)]
    pages = []
    doc = SimpleDocTemplate(path, pagesize=A4, title=title, author="flowcept", leftMargin=1.5 * cm,
                            rightMargin=1.5 * cm, topMargin=1.5 * cm, bottomMargin=1.5 * cm)
    doc.build(story, onLaterPages=lambda c, d: pages.append(d.page), onFirstPage=lambda c, d: pages.append(d.page))
    return {"pages": len(pages), "plots": len(plots)}


def _image(plot, image_cls, cm):
    fig = draw_matplotlib(plot)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    buf.seek(0)
    width = 17.5 * cm
    return image_cls(buf, width=width, height=width * 3.6 / 8)
