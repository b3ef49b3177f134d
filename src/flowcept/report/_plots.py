"""The report's plots as plain data (one source), drawn with matplotlib (PDF) or plotly (HTML)."""

from __future__ import annotations

from dataclasses import dataclass, field

from flowcept.report._stats import MAX_TIMELINE, RunStats

__all__ = ["Plot", "plot_data", "draw_matplotlib", "draw_plotly"]

_STATUS_COLORS = {"FINISHED": "#4C72B0", "ERROR": "#C44E52", "RUNNING": "#DD8452"}
_OTHER_COLOR = "#8C8C8C"


@dataclass
class Plot:
    """One chart: ``kind`` is ``gantt`` (bars: start offset, duration, lane, status, label), ``bars``
    (label, value) or ``lines`` (series name -> [(t offset, value)])."""

    kind: str
    title: str
    xlabel: str
    ylabel: str
    bars: list = field(default_factory=list)
    lines: dict = field(default_factory=dict)


def plot_data(stats: RunStats) -> list[Plot]:
    """The plots a run's statistics support: Gantt timeline, time per activity, telemetry over time."""
    plots = []
    t0 = stats.first_start or 0.0
    timeline = stats.timeline_sorted()
    if timeline:
        note = f" (earliest {MAX_TIMELINE} of {stats.n_tasks} tasks)" if stats.n_tasks > len(timeline) else ""
        plots.append(Plot("gantt", "Task timeline" + note, "seconds since the first task started", "activity",
                          bars=[(s - t0, max(e - s, 0.0), act, st, tid) for s, e, act, st, tid in timeline]))
    per_activity = [(a.activity_id, a.duration_stats()["total"]) for a in stats.activities.values()
                    if a.duration_stats()]
    if per_activity:
        plots.append(Plot("bars", "Time per activity (sum of task durations)", "seconds", "activity",
                          bars=sorted(per_activity, key=lambda item: -item[1])))
    for name, series in stats.series.items():
        if len(series.points) >= 1:
            plots.append(Plot("lines", f"{name} over time (task-end snapshots)", "seconds since the first task",
                              name, lines={name: [(t - t0, v) for t, v in sorted(series.points)]}))
    return plots


def _lanes(plot: Plot) -> list[str]:
    return list(dict.fromkeys(lane for _, _, lane, _, _ in plot.bars))


def draw_matplotlib(plot: Plot):
    """A matplotlib Figure (Agg backend; no display needed)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 3.6), dpi=110)
    ax = fig.add_subplot()
    if plot.kind == "gantt":
        lanes = _lanes(plot)
        index = {lane: i for i, lane in enumerate(lanes)}
        # One collection per (status, lane): thousands of bars draw as a few artists, not one patch each.
        labelled: set = set()
        for status in dict.fromkeys(st for *_, st, _ in plot.bars):
            color = _STATUS_COLORS.get(status, _OTHER_COLOR)
            for lane in lanes:
                spans = [(b[0], b[1]) for b in plot.bars if b[3] == status and b[2] == lane]
                if spans:
                    ax.broken_barh(spans, (index[lane] - 0.3, 0.6), facecolors=color,
                                   label=None if status in labelled else status)
                    labelled.add(status)
        ax.set_yticks(range(len(lanes)), labels=lanes)
        ax.legend(loc="lower right", fontsize=7)
    elif plot.kind == "bars":
        labels = [b[0] for b in plot.bars]
        ax.barh(range(len(labels)), [b[1] for b in plot.bars], color="#4C72B0")
        ax.set_yticks(range(len(labels)), labels=labels)
        ax.invert_yaxis()
    else:
        for name, points in plot.lines.items():
            ax.plot([p[0] for p in points], [p[1] for p in points], marker=".", linewidth=1, label=name)
    ax.set_title(plot.title, fontsize=10)
    ax.set_xlabel(plot.xlabel, fontsize=8)
    ax.set_ylabel(plot.ylabel, fontsize=8)
    ax.tick_params(labelsize=7)
    fig.tight_layout()
    return fig


def draw_plotly(plot: Plot):
    """A plotly Figure (interactive: hover shows the task id and times)."""
    import plotly.graph_objects as go

    fig = go.Figure()
    if plot.kind == "gantt":
        for status in dict.fromkeys(st for *_, st, _ in plot.bars):
            rows = [b for b in plot.bars if b[3] == status]
            fig.add_trace(go.Bar(
                base=[b[0] for b in rows], x=[b[1] for b in rows], y=[b[2] for b in rows], orientation="h",
                name=status, marker_color=_STATUS_COLORS.get(status, _OTHER_COLOR),
                customdata=[[b[4], b[0], b[0] + b[1]] for b in rows],
                hovertemplate="task %{customdata[0]}<br>start %{customdata[1]:.3f} s<br>end %{customdata[2]:.3f} s"
                              "<extra>%{y}</extra>"))
        fig.update_layout(barmode="overlay")
    elif plot.kind == "bars":
        fig.add_trace(go.Bar(x=[b[1] for b in plot.bars], y=[b[0] for b in plot.bars], orientation="h",
                             name="seconds"))
        fig.update_yaxes(autorange="reversed")
    else:
        for name, points in plot.lines.items():
            fig.add_trace(go.Scatter(x=[p[0] for p in points], y=[p[1] for p in points], mode="lines+markers",
                                     name=name))
    fig.update_layout(title=plot.title, xaxis_title=plot.xlabel, yaxis_title=plot.ylabel, height=380,
                      margin={"l": 60, "r": 20, "t": 50, "b": 40})
    return fig
