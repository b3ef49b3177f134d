"""Stdlib-only CPU and memory snapshot for ``@telemetry_flowcept_task`` when telemetry is off in the settings.

Same keys as the full sampler where the standard library can fill them: ``cpu.times_avg`` (Linux),
``process.cpu_times``, ``process.memory.rss``, ``process.io_counters`` (Linux), ``memory.virtual`` (Linux).
"""

from __future__ import annotations

import os
import sys
import time

from flowcept.capture.telemetry import _procfs

try:
    import resource
except ImportError:  # Windows
    resource = None


def basic_snapshot() -> dict:
    """A cheap snapshot that needs neither psutil nor any setting; keys present depend on the platform."""
    out: dict = {"timestamp": time.time()}
    t = os.times()
    proc: dict = {"pid": os.getpid(),
                  "cpu_times": {"user": t.user, "system": t.system,
                                "children_user": t.children_user, "children_system": t.children_system}}
    rss = _procfs.self_rss() if sys.platform.startswith("linux") else None
    if resource is not None:
        ru = resource.getrusage(resource.RUSAGE_SELF)
        if rss is None:  # peak, not current, but the best the stdlib has off Linux
            rss = ru.ru_maxrss * (1 if sys.platform == "darwin" else 1024)
        proc["num_ctx_switches"] = {"voluntary": ru.ru_nvcsw, "involuntary": ru.ru_nivcsw}
    if rss is not None:
        proc["memory"] = {"rss": rss}
    io = _procfs.self_io() if sys.platform.startswith("linux") else None
    if io is not None:
        proc["io_counters"] = io
    out["process"] = proc
    try:
        total, _ = _procfs.parse_stat(_procfs.read_file("/proc/stat"), False)
        out["cpu"] = {"times_avg": _procfs.ticks_to_times(total)}
    except (OSError, ValueError, IndexError):
        pass
    try:
        mi = _procfs.parse_meminfo(_procfs.read_file("/proc/meminfo"))
        out["memory"] = {"virtual": _procfs.virtual_memory(mi), "swap": _procfs.swap_memory(mi)}
    except (OSError, ValueError, KeyError, IndexError):
        pass
    return out
