"""The provenance report as one self-contained HTML file: the card's sections and interactive plotly charts, with
plotly's JavaScript inlined (the file opens offline)."""

from __future__ import annotations

import html

from flowcept.report._plots import draw_plotly, plot_data
from flowcept.report._stats import RunStats
from flowcept.report.card import Section

__all__ = ["write_html"]

_STYLE = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:.5em 0 1em;font-size:.85em}td,th{border:1px solid #bbb;padding:3px 6px;
text-align:left;vertical-align:top}th{background:#e8ecf4}h1{font-size:1.6em}h2{font-size:1.2em;margin-top:1.5em}"""


def _section_html(section: Section) -> str:
    out = [f"<h2>{html.escape(section.title)}</h2>"]
    bullets = [line[2:] for line in section.lines if line.startswith("- ")]
    out += [f"<p>{html.escape(line)}</p>" for line in section.lines if not line.startswith("- ")]
    if bullets:
        out.append("<ul>" + "".join(f"<li>{html.escape(b)}</li>" for b in bullets) + "</ul>")
    for table in section.tables:
        out.append("<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in table.header) + "</tr>")
        out += ["<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in table.rows]
        out.append("</table>")
    return "\n".join(out)


def write_html(path: str, title: str, sections: list[Section], stats: RunStats) -> dict:
    """Write the report; returns ``{"plots"}``."""
    plots = plot_data(stats)
    charts = []
    for i, plot in enumerate(plots):
        charts.append(draw_plotly(plot).to_html(full_html=False, include_plotlyjs=(i == 0),
                                                div_id=f"flowcept-plot-{i}", config={"displaylogo": False}))
    body = [f"<h1>{html.escape(title)}</h1>"]
    for i, section in enumerate(sections):
        body.append(_section_html(section))
        if i == 1:
            body.append("<h2>Plots</h2>" + "\n".join(charts))
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
                 f"<style>{_STYLE}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")
    return {"plots": len(plots)}
