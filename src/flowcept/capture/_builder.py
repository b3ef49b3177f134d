"""The task record, built in one place: fields fixed at decoration time, start, finish and error.

Every capture path (``@flowcept_task`` and its variants, ``FlowceptTask``, loops, torch and agent capture) takes
its static fields, telemetry and per-call decisions from here, so they cannot drift apart.
"""

from __future__ import annotations

import inspect
import logging
from typing import Callable

from flowcept._internal_errors import report_internal_error
from flowcept._runtime import hostname

logger = logging.getLogger("flowcept")


class _BasicSampler:
    """CPU/memory snapshots from the standard library, for explicit telemetry requests with telemetry off."""

    __slots__ = ()

    @staticmethod
    def snapshot() -> dict:
        from flowcept.capture.telemetry import basic_snapshot

        return basic_snapshot()


def telemetry_sampler(scope, requested: bool | None):
    """The sampler for one task: the scope's when telemetry is on, else a basic one if explicitly requested."""
    if requested is False:
        return None
    if scope.telemetry is not None:
        return scope.telemetry
    return _BasicSampler() if requested else None


class NoScopeWarning:
    """Warns once per decorated function called while no Flowcept is running."""

    __slots__ = ("name", "done")

    def __init__(self, name: str):
        self.name = name
        self.done = False

    def __call__(self) -> None:
        if self.done:
            return
        self.done = True
        from flowcept.settings import get_settings

        if get_settings().instrumentation.enabled:
            logger.warning(
                "%s was called while no Flowcept is running, so nothing was captured. "
                "Wrap the calls in `with Flowcept(...):` or call Flowcept(...).start() first.", self.name)


def name_of(func: Callable) -> str:
    """The activity name of a callable: its ``__name__`` (partials and callable objects included)."""
    name = getattr(func, "__name__", None)
    if name is None and hasattr(func, "func"):  # functools.partial
        return name_of(func.func)
    return name or type(func).__name__


def static_fields(func: Callable, activity_id: str | None, tags, custom_metadata, subtype, agent_id,
                   source_agent_id) -> dict:
    fields = {
        "activity_id": activity_id or name_of(func),
        "hostname": hostname(),
        "subtype": subtype,
        "agent_id": str(agent_id) if agent_id is not None else None,
        "source_agent_id": str(source_agent_id) if source_agent_id is not None else None,
        "tags": [tags] if isinstance(tags, str) else (list(tags) if tags else None),
        "custom_metadata": dict(custom_metadata) if custom_metadata else None,
    }
    return {k: v for k, v in fields.items() if v is not None}


def id_overrides(func: Callable) -> tuple[bool, bool]:
    """Whether calls may carry ``workflow_id`` / ``campaign_id`` among their inputs (parameters or **kwargs)."""
    try:
        params = inspect.signature(func).parameters
    except (TypeError, ValueError):
        return True, True
    var_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    return var_kw or "workflow_id" in params, var_kw or "campaign_id" in params


def lift_ids(task: dict, used: dict, lift_wf: bool, lift_camp: bool) -> None:
    # A non-empty string input named workflow_id/campaign_id routes the task; None never blanks the workflow.
    if lift_wf:
        wf = used.get("workflow_id")
        if isinstance(wf, str) and wf:
            task["workflow_id"] = wf
    if lift_camp:
        camp = used.get("campaign_id")
        if isinstance(camp, str) and camp:
            task["campaign_id"] = camp


def _summarize_into(task: dict) -> None:
    try:
        from flowcept.capture.telemetry import summarize

        task["telemetry_summary"] = summarize(task["telemetry_at_start"], task["telemetry_at_end"])
    except Exception as exc:  # noqa: BLE001
        report_internal_error("telemetry summary", exc)


def end_telemetry(task: dict, sampler) -> None:
    """Add ``telemetry_at_end`` (and the summary, when the start snapshot exists) to a task being closed."""
    try:
        task["telemetry_at_end"] = sampler.snapshot()
    except Exception as exc:  # noqa: BLE001
        report_internal_error("telemetry", exc)
        return
    if "telemetry_at_start" in task:
        _summarize_into(task)
