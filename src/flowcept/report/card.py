"""The workflow card: a run's facts as sections of text and tables, rendered to markdown here (HTML and PDF reuse
the same sections)."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any

from flowcept.report._redact import redact
from flowcept.report._stats import RESOURCE_FIELDS, RunStats

__all__ = ["Section", "Table", "card_sections", "render_markdown", "fmt_seconds"]


@dataclass
class Table:
    """A header row and rows of cells (strings)."""

    header: list[str]
    rows: list[list[str]]


@dataclass
class Section:
    """A titled part of the card: paragraphs (``- `` prefixed lines are bullets) and tables."""

    title: str
    lines: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)


def fmt_seconds(value: float | None) -> str:
    """Seconds with millisecond precision (``"1.250"``), or ``"-"``."""
    return "-" if value is None else f"{value:.3f}"


def _utc(epoch: Any) -> str:
    if isinstance(epoch, (int, float)) and not isinstance(epoch, bool):
        return datetime.datetime.fromtimestamp(epoch, tz=datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] \
            + " UTC"
    return "-"


def _short(value: Any, limit: int = 80) -> str:
    import orjson

    text = value if isinstance(value, str) else orjson.dumps(
        value, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_SORT_KEYS, default=str).decode()
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _ordered(stats: RunStats) -> list:
    """Activities by first start (then name): one order for every table, whatever order the store returned."""
    return sorted(stats.activities.values(), key=lambda a: (a.first_start is None, a.first_start or 0, a.activity_id))


def _workflow_section(stats: RunStats) -> Section:
    section = Section("1. Workflow")
    rows = []
    for wf in stats.workflows:
        wf = redact(wf)
        elapsed = None
        if isinstance(wf.get("started_at"), (int, float)) and isinstance(wf.get("ended_at"), (int, float)):
            elapsed = wf["ended_at"] - wf["started_at"]
        repo = wf.get("code_repository") if isinstance(wf.get("code_repository"), dict) else {}
        rows.append([("Workflow id", str(wf["workflow_id"])), ("Name", str(wf.get("name") or "-")),
                     ("Campaign id", str(wf.get("campaign_id") or "-")),
                     ("Description", str(wf.get("workflow_description") or "-")),
                     ("Subtype", str(wf.get("subtype") or "-")), ("Status", str(wf.get("status") or "-")),
                     ("Started", _utc(wf.get("started_at"))), ("Ended", _utc(wf.get("ended_at"))),
                     ("Elapsed (s)", fmt_seconds(elapsed)), ("User", str(wf.get("user") or "-")),
                     ("Host", str(wf.get("hostname") or "-")), ("System", str(wf.get("sys_name") or "-")),
                     ("Environment", str(wf.get("environment_id") or "-")),
                     ("Code", f"{repo.get('branch', '-')} {repo.get('short_sha', '')} {repo.get('dirty', '')}".strip()
                      if repo else "-"),
                     ("flowcept version", str(wf.get("flowcept_version") or "-"))])
        if isinstance(wf.get("used"), dict) and wf["used"]:
            rows[-1].append(("Arguments", _short(wf["used"], 200)))
        if isinstance(wf.get("generated"), dict) and wf["generated"]:
            rows[-1].append(("Outputs", _short(wf["generated"], 200)))
    for fields_ in rows:
        section.tables.append(Table(["Field", "Value"], [[k, v] for k, v in fields_]))
    return section


def _summary_section(stats: RunStats) -> Section:
    span = (stats.last_end - stats.first_start) if stats.first_start is not None and stats.last_end is not None \
        else None
    hosts = sorted({h for a in stats.activities.values() for h in a.hosts})
    lines = [f"- Workflows: {len(stats.workflows)}",
             f"- Tasks: {stats.n_tasks}",
             "- Status: " + (", ".join(f"{k} {v}" for k, v in sorted(stats.status.items())) or "-"),
             f"- Activities: {len(stats.activities)}",
             f"- First task started: {_utc(stats.first_start)}",
             f"- Last task ended: {_utc(stats.last_end)}",
             f"- Task span (s): {fmt_seconds(span)}",
             "- Hosts: " + (", ".join(hosts[:20]) + (f" (+{len(hosts) - 20} more)" if len(hosts) > 20 else "")
                            if hosts else "-")]
    order = _ordered(stats)
    if order:
        lines.append("- Structure (activities by first start): " + " → ".join(a.activity_id for a in order[:30]))
    return Section("2. Summary", lines)


def _infrastructure_section(stats: RunStats) -> Section:
    section = Section("3. Infrastructure")
    rows = []
    for wf in stats.workflows:
        infos = wf.get("machine_info")
        if not isinstance(infos, dict):
            continue
        for interceptor, info in infos.items():
            if not isinstance(info, dict):
                continue
            plat = info.get("platform") if isinstance(info.get("platform"), dict) else {}
            cpu = info.get("cpu") if isinstance(info.get("cpu"), dict) else {}
            mem = (info.get("memory") or {}).get("virtual") if isinstance(info.get("memory"), dict) else None
            disk = info.get("disk") if isinstance(info.get("disk"), dict) else {}
            gpu = info.get("gpu")
            rows.append([str(info.get("hostname") or plat.get("node") or interceptor),
                         " ".join(str(plat.get(k, "")) for k in ("system", "release", "machine")).strip() or "-",
                         str(cpu.get("brand_raw") or cpu.get("model_name") or plat.get("processor") or "-"),
                         str(cpu.get("count") or cpu.get("cpu_count") or "-"),
                         f"{mem['total'] / 1e9:.1f}" if isinstance(mem, dict) and mem.get("total") else "-",
                         f"{disk['total'] / 1e9:.1f}" if disk.get("total") else "-",
                         _short(list(gpu) if isinstance(gpu, dict) else gpu, 60) if gpu else "-"])
    if rows:
        section.tables.append(Table(["Host", "Platform", "CPU", "Cores", "Memory (GB)", "Disk (GB)", "GPU"], rows))
    else:
        section.lines.append("No machine information was captured (telemetry_capture.machine_info: true adds it).")
    return section


def _activities_section(stats: RunStats) -> Section:
    section = Section("4. Activities")
    statuses = sorted({s for a in stats.activities.values() for s in a.status})
    rows = []
    for act in _ordered(stats):
        d = act.duration_stats() or {}
        rows.append([act.activity_id, str(act.n_tasks)] + [str(act.status.get(s, 0)) for s in statuses]
                    + [fmt_seconds(d.get(k)) for k in ("median", "min", "max", "total")])
    section.tables.append(Table(["Activity", "Tasks"] + statuses
                                + ["Median (s)", "Min (s)", "Max (s)", "Total (s)"], rows))
    detail = []
    for act in _ordered(stats):
        detail.append([act.activity_id, ", ".join(sorted(act.inputs)) or "-",
                       ", ".join(sorted(act.outputs)) or "-",
                       ", ".join(f"{h} ({n})" for h, n in act.hosts.most_common(5)) or "-"])
    section.tables.append(Table(["Activity", "Inputs", "Outputs", "Hosts (tasks)"], detail))
    return section


def _resources_section(stats: RunStats) -> Section:
    section = Section("5. Resource usage")
    rows = []
    for act in _ordered(stats):
        if act.n_telemetry:
            rows.append([act.activity_id, str(act.n_telemetry)]
                        + [f"{act.resources.get(label, 0.0):.3f}" for label, _ in RESOURCE_FIELDS])
    if rows:
        section.lines.append("Sums over each activity's tasks of end-minus-start telemetry (telemetry_summary).")
        section.tables.append(Table(["Activity", "Tasks with telemetry"] + [label for label, _ in RESOURCE_FIELDS],
                                    rows))
    else:
        section.lines.append("No task carries telemetry (telemetry_capture.enabled: true, or "
                             "@telemetry_flowcept_task, adds it).")
    for name, series in stats.series.items():
        if series.points:
            values = [v for _, v in series.points]
            section.lines.append(f"- {name}: min {min(values):.2f}, max {max(values):.2f} "
                                 f"over {series.seen} snapshots")
    return section


def _objects_section(stats: RunStats) -> Section | None:
    if not stats.objects:
        return None
    objs = sorted(stats.objects, key=lambda o: -(o.get("updated_at") or o.get("created_at") or 0))
    rows = [[str(o.get("object_id")), str(o.get("object_type") or "-"), str(o.get("version", "-")),
             str(o.get("task_id") or "-"), str(o.get("object_size_bytes") or "-"), _utc(o.get("updated_at")
                                                                                       or o.get("created_at"))]
            for o in objs[:20]]
    section = Section("6. Objects", [f"{len(objs)} objects; the latest {len(rows)}:"])
    section.tables.append(Table(["Object id", "Type", "Version", "Task", "Size (bytes)", "Updated"], rows))
    return section


def card_sections(stats: RunStats) -> tuple[str, list[Section]]:
    """The card's title and sections."""
    names = [str(w.get("name") or w["workflow_id"]) for w in stats.workflows]
    title = f"Workflow Card: {names[0]}" if len(names) == 1 else f"Campaign Card: {len(names)} workflows"
    sections = [_workflow_section(stats), _summary_section(stats), _infrastructure_section(stats),
                _activities_section(stats), _resources_section(stats)]
    objects = _objects_section(stats)
    if objects is not None:
        sections.append(objects)
    sections.append(Section("Aggregation method", [
        "Tasks are grouped by activity_id. A duration is ended_at minus started_at of one task; tasks without both "
        "times count in Tasks but not in durations. Values whose key looks secret (password, token, api_key, "
        "secret...) are shown as REDACTED."]))
    return title, sections


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(title: str, sections: list[Section]) -> str:
    """The card as GitHub-flavoured markdown."""
    out = [f"# {title}", ""]
    for section in sections:
        out += [f"## {section.title}", ""]
        if section.lines:
            out += section.lines + [""]
        for table in section.tables:
            out.append("| " + " | ".join(_md_cell(h) for h in table.header) + " |")
            out.append("|" + "|".join("---" for _ in table.header) + "|")
            out += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in table.rows]
            out.append("")
    return "\n".join(out)
