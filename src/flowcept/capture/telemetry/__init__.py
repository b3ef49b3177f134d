"""Telemetry engine: per-task CPU, process, memory, disk, network and GPU snapshots, their summary, machine info.

::

    make_sampler(cfg) -> TelemetrySampler | None     once per controller (static parts read here)
    sampler.snapshot() -> dict                       reference layout 7.1, + "timestamp"; never raises
    basic_snapshot() -> dict                         stdlib only, for @telemetry_flowcept_task with telemetry off
    summarize(start, end) -> dict                    telemetry_summary (reference 1.8), + process block
    machine_info(cfg, include_env=False) -> dict     workflow machine_info (reference 7.3)
"""

from flowcept.capture.telemetry.basic import basic_snapshot
from flowcept.capture.telemetry.machine import machine_info, redact_environment
from flowcept.capture.telemetry.sampler import TelemetrySampler, make_sampler
from flowcept.capture.telemetry.summary import summarize

__all__ = ["TelemetrySampler", "basic_snapshot", "machine_info", "make_sampler", "redact_environment", "summarize"]
