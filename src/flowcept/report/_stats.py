"""One streaming pass over a run's records: per-activity counts and durations, a task timeline, telemetry series.

Memory is bounded by the number of activities (durations are kept per activity for exact medians, 8 bytes a task),
plus fixed caps on the timeline (the earliest :data:`MAX_TIMELINE` tasks) and on each telemetry series
(:data:`MAX_POINTS`, thinned evenly when full).
"""

from __future__ import annotations

import heapq
import statistics
from array import array
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from flowcept.export._source import RecordSource

__all__ = ["ActivityStats", "RunStats", "collect", "MAX_TIMELINE", "MAX_POINTS"]

MAX_TIMELINE = 2000
MAX_POINTS = 4000
_MAX_NAMES = 12


def _num(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None


def _dig(record: Any, *path: str) -> float | None:
    for part in path:
        if not isinstance(record, dict):
            return None
        record = record.get(part)
    return _num(record)


@dataclass
class ActivityStats:
    """What one ``activity_id`` did across its tasks."""

    activity_id: str
    n_tasks: int = 0
    status: Counter = field(default_factory=Counter)
    durations: array = field(default_factory=lambda: array("d"))
    first_start: float | None = None
    last_end: float | None = None
    hosts: Counter = field(default_factory=Counter)
    inputs: dict = field(default_factory=dict)
    outputs: dict = field(default_factory=dict)
    resources: Counter = field(default_factory=Counter)  # sums of telemetry_summary diffs
    n_telemetry: int = 0

    def duration_stats(self) -> dict[str, float] | None:
        """median, min, max, total and mean duration in seconds; None when no task has both times."""
        if not self.durations:
            return None
        values = self.durations
        return {"median": statistics.median(values), "min": min(values), "max": max(values),
                "total": float(sum(values)), "mean": float(sum(values)) / len(values)}


@dataclass
class _Series:
    """A bounded (time, value) series: when full, every second point is dropped and the stride doubles."""

    name: str
    unit: str
    points: list = field(default_factory=list)
    stride: int = 1
    seen: int = 0

    def add(self, t: float, value: float) -> None:
        self.seen += 1
        if (self.seen - 1) % self.stride:
            return
        self.points.append((t, value))
        if len(self.points) >= MAX_POINTS:
            self.points = self.points[::2]
            self.stride *= 2


#: Telemetry series: name -> (unit, paths tried in order inside ``telemetry_at_end``).
TELEMETRY_SERIES = {
    "CPU (%)": ("%", (("cpu", "percent_all"), ("process", "cpu_percent"))),
    "Memory used (GB)": ("GB", (("memory", "virtual", "used"), ("process", "memory", "rss"))),
    "Disk read (MB, cumulative)": ("MB", (("disk", "io_sum", "read_bytes"), ("process", "io_counters", "read_bytes"))),
    "Disk write (MB, cumulative)": ("MB", (("disk", "io_sum", "write_bytes"),
                                           ("process", "io_counters", "write_bytes"))),
}
_SCALE = {"%": 1.0, "GB": 1e-9, "MB": 1e-6}
#: telemetry_summary fields summed per activity: (label, path).
RESOURCE_FIELDS = (
    ("CPU user (s)", ("cpu", "user_time_diff")),
    ("CPU system (s)", ("cpu", "system_time_diff")),
    ("Memory used delta (MB)", ("memory", "used_mem_diff")),
    ("Disk read (MB)", ("disk", "read_bytes_diff")),
    ("Disk write (MB)", ("disk", "write_bytes_diff")),
    ("Net sent (MB)", ("network", "bytes_sent_diff")),
    ("Net received (MB)", ("network", "bytes_recv_diff")),
)


@dataclass
class RunStats:
    """Everything the report renderers need, gathered in one pass."""

    workflows: list[dict]
    objects: list[dict]
    activities: dict[str, ActivityStats] = field(default_factory=dict)
    status: Counter = field(default_factory=Counter)
    n_tasks: int = 0
    first_start: float | None = None
    last_end: float | None = None
    timeline: list = field(default_factory=list)  # heap of (-start, end, activity, status, task_id)
    series: dict[str, _Series] = field(default_factory=dict)

    def timeline_sorted(self) -> list[tuple[float, float, str, str, str]]:
        """``(start, end, activity, status, task_id)`` of the earliest tasks, by start."""
        return sorted((-neg, end, act, st, tid) for neg, end, act, st, tid in self.timeline)

    def add(self, task: dict) -> None:
        self.n_tasks += 1
        activity = str(task.get("activity_id") or "(no activity_id)")
        stats = self.activities.get(activity)
        if stats is None:
            stats = self.activities[activity] = ActivityStats(activity)
        status = str(task.get("status") or "UNKNOWN")
        stats.n_tasks += 1
        stats.status[status] += 1
        self.status[status] += 1
        start, end = _num(task.get("started_at")), _num(task.get("ended_at"))
        if start is not None:
            stats.first_start = start if stats.first_start is None else min(stats.first_start, start)
            self.first_start = start if self.first_start is None else min(self.first_start, start)
        if end is not None:
            stats.last_end = end if stats.last_end is None else max(stats.last_end, end)
            self.last_end = end if self.last_end is None else max(self.last_end, end)
        if start is not None and end is not None:
            stats.durations.append(end - start)
            item = (-start, end, activity, status, str(task.get("task_id")))
            if len(self.timeline) < MAX_TIMELINE:
                heapq.heappush(self.timeline, item)
            elif item > self.timeline[0]:  # earlier than the latest start kept
                heapq.heapreplace(self.timeline, item)
        if task.get("hostname"):
            stats.hosts[str(task["hostname"])] += 1
        for names, values in ((stats.inputs, task.get("used")), (stats.outputs, task.get("generated"))):
            if isinstance(values, dict):
                for key in values:
                    if len(names) < _MAX_NAMES:
                        names.setdefault(str(key), None)
        summary = task.get("telemetry_summary")
        if isinstance(summary, dict):
            stats.n_telemetry += 1
            for label, path in RESOURCE_FIELDS:
                value = _dig(summary, *path)
                if value is not None:
                    stats.resources[label] += value if "(s)" in label else value / 1e6
        self._telemetry(task.get("telemetry_at_end"), end)

    def _telemetry(self, snapshot: Any, when: float | None) -> None:
        if not isinstance(snapshot, dict):
            return
        t = _num(snapshot.get("timestamp")) or when
        if t is None:
            return
        for name, (unit, paths) in TELEMETRY_SERIES.items():
            for path in paths:
                value = _dig(snapshot, *path)
                if value is not None:
                    series = self.series.get(name)
                    if series is None:
                        series = self.series[name] = _Series(name, unit)
                    series.add(t, value * _SCALE[unit])
                    break


def collect(source: RecordSource) -> RunStats:
    """Read every task of ``source`` once and return the aggregates."""
    stats = RunStats(workflows=source.workflows(), objects=source.objects())
    for page in source.task_pages():
        for task in page:
            stats.add(task)
    return stats
