"""``telemetry_summary`` of a task: end minus start for each block both snapshots carry (reference 1.8).

Pure arithmetic on two snapshot dicts; it never touches ``tags`` (the reference's threshold tagger replaced
the user's tags; flowcept leaves tagging to the caller).
"""

from __future__ import annotations

_CPU = (("user_time_diff", "user"), ("system_time_diff", "system"), ("idle_time_diff", "idle"))
_DISK = ("read_bytes", "write_bytes", "read_count", "write_count")
_NET = ("bytes_sent", "bytes_recv", "packets_sent", "packets_recv")


def _diff(a, b):
    d = b - a
    return round(d, 6) if isinstance(d, float) else d


def _sub(start: dict | None, end: dict | None, pairs) -> dict:
    """{out_key: end[k] - start[k]} for the pairs present and numeric on both sides."""
    out = {}
    if not isinstance(start, dict) or not isinstance(end, dict):
        return out
    for out_key, key in pairs:
        a, b = start.get(key), end.get(key)
        if isinstance(a, (int, float)) and isinstance(b, (int, float)):
            out[out_key] = _diff(a, b)
    return out


def _get(d, *path):
    for key in path:
        if not isinstance(d, dict):
            return None
        d = d.get(key)
    return d


def summarize(start: dict, end: dict) -> dict:
    """End minus start of two snapshots.

    Args:
        start: snapshot taken when the task started (``snapshot()`` or ``basic_snapshot()``).
        end: snapshot taken when it ended.

    Returns:
        ``{duration_sec?, cpu?, memory?, disk?, network?, process?}``; a sub-block appears only when both
        snapshots carry it. ``cpu.percent_all_diff`` is the reference's end-minus-start of ``percent_all``;
        the end snapshot's own ``percent_all`` already is the system CPU percent over the task.
    """
    start, end = start or {}, end or {}
    out: dict = {}
    if isinstance(start.get("timestamp"), (int, float)) and isinstance(end.get("timestamp"), (int, float)):
        out["duration_sec"] = _diff(start["timestamp"], end["timestamp"])

    s, e = start.get("cpu"), end.get("cpu")
    if isinstance(s, dict) and isinstance(e, dict):
        cpu = _sub(s, e, [("percent_all_diff", "percent_all")])
        cpu.update(_sub(s.get("times_avg"), e.get("times_avg"), _CPU))
        if cpu:
            out["cpu"] = cpu

    s, e = start.get("memory"), end.get("memory")
    if isinstance(s, dict) and isinstance(e, dict):
        mem = _sub(s.get("virtual"), e.get("virtual"), [("used_mem_diff", "used"), ("percent_diff", "percent")])
        mem.update(_sub(s.get("swap"), e.get("swap"), [("swap_used_diff", "used")]))
        if mem:
            out["memory"] = mem

    disk = _sub(_get(start, "disk", "io_sum"), _get(end, "disk", "io_sum"), [(f"{k}_diff", k) for k in _DISK])
    if disk:
        out["disk"] = disk

    net = _sub(_get(start, "network", "netio_sum"), _get(end, "network", "netio_sum"),
               [(f"{k}_diff", k) for k in _NET])
    if net:
        out["network"] = net

    s, e = start.get("process"), end.get("process")
    if isinstance(s, dict) and isinstance(e, dict):
        proc = _sub(s.get("cpu_times"), e.get("cpu_times"),
                    [("cpu_user_time_diff", "user"), ("cpu_system_time_diff", "system")])
        proc.update(_sub(s.get("memory"), e.get("memory"), [("rss_diff", "rss")]))
        proc.update(_sub(s.get("io_counters"), e.get("io_counters"),
                         [("io_read_bytes_diff", "read_bytes"), ("io_write_bytes_diff", "write_bytes")]))
        if proc:
            out["process"] = proc
    return out
