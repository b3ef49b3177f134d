"""``@flowcept_task`` and its variants: one dict per call, appended to the process buffer.

The public decorators check their options and hand the function to the record builder
(:mod:`flowcept.capture._builder`), which decides at decoration time everything that can be decided once and
generates the wrapper; a call reads the current scope, takes an id, reads the clock twice, builds one dict and
appends it. Conversion of values to JSON happens later, on the flusher thread.
"""

from __future__ import annotations

import argparse
from typing import Any, Callable

from flowcept import context as _ctx
from flowcept.capture._builder import TASK_OPTIONS, TaskSpec, check_options, make_wrapper, name_of, task_wrapper
from flowcept.serialize import sanitize

__all__ = ["flowcept_task", "telemetry_flowcept_task", "lightweight_flowcept_task", "default_args_handler",
           "get_current_context_task_id", "name_of"]


def default_args_handler(*args: Any, **kwargs: Any) -> dict:
    """The documented default: an ``argparse.Namespace`` first argument is flattened, other positionals become
    ``arg_<i>``, keyword arguments are kept, and values JSON cannot hold are converted.
    """
    handled: dict = {}
    if args and isinstance(args[0], argparse.Namespace):
        handled.update(vars(args[0]))
        args = args[1:]
    for i, arg in enumerate(args):
        handled[f"arg_{i}"] = arg
    handled.update(kwargs)
    return sanitize(handled)


def flowcept_task(func: Callable | None = None, **options: Any):
    """Capture each call of a function as a task: inputs (``used``), outputs (``generated``), timing, status.

    Usable bare (``@flowcept_task``) or with options (``@flowcept_task(output_names="y", tags=[...])``).

    Args:
        output_names: a name, or names matching a returned tuple/list, for the ``generated`` keys.
        args_handler: ``(*args, **kwargs) -> dict`` replacing the default argument naming.
        tags: labels (a string or a list).
        custom_metadata: a dict stored with each task.
        subtype: a task subtype string.
        workflow_id: route the tasks to this workflow instead of the current one.
        campaign_id: route the tasks to this campaign instead of the current one.
        agent_id: id of the agent that runs the task.
        capture_telemetry: True/False to force telemetry snapshots on or off for this function.
        redact: False stores this function's values as they are; a list of key patterns redacts those keys too
            (see the guide's "Secrets" section); default: the settings decide.
        redact_allow: key patterns never redacted for this function (e.g. ``["pad_token"]``).

    An exception raised by the function is recorded (``status: ERROR``, message in ``stderr``) and re-raised
    unchanged. Calls made while no Flowcept is running are not captured.
    """
    check_options(options, TASK_OPTIONS, "flowcept_task")
    if func is None:
        return lambda f: task_wrapper(f, **options)
    return task_wrapper(func, **options)


def telemetry_flowcept_task(func: Callable | None = None, **options: Any):
    """Like :func:`flowcept_task`, and always records ``telemetry_at_start``/``telemetry_at_end``.

    With telemetry capture off in the settings, a CPU/memory snapshot is taken anyway: the decorator is an
    explicit request.
    """
    check_options(options, TASK_OPTIONS, "telemetry_flowcept_task")
    options.setdefault("capture_telemetry", True)
    if func is None:
        return lambda f: task_wrapper(f, **options)
    return task_wrapper(func, **options)


def lightweight_flowcept_task(func: Callable | None = None, *, output_names=None):
    """Capture each call with the smallest record: id, workflow, activity, ``used`` and ``generated``.

    No timestamps, telemetry or parent links; a call that raises is recorded with ``status: ERROR`` and its
    message in ``stderr``, and the exception propagates unchanged. The cheapest way to trace very hot functions.
    """
    if func is None:
        return lambda f: lightweight_flowcept_task(f, output_names=output_names)
    return make_wrapper(TaskSpec(func, lightweight=True, output_names=output_names))


def get_current_context_task_id() -> str | None:
    """Id of the task whose function is running now (the parent of anything captured inside it)."""
    return _ctx._parent_task.get()
