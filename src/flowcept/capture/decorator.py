"""``@flowcept_task`` and its variants: one dict per call, appended to the process buffer.

Everything that can be decided once is decided at decoration time (parameter names, output mapping, static
fields); a call reads the current scope, takes an id, reads the clock twice, builds one dict and appends it.
Conversion of values to JSON happens later, on the flusher thread.
"""

from __future__ import annotations

import argparse
import functools
import inspect
import logging
import time
from typing import Any, Callable

from flowcept import context as _ctx
from flowcept._internal_errors import report_internal_error
from flowcept.buffer import emit_inline
from flowcept.capture._binding import make_binder, make_output_mapper
from flowcept.capture._builder import (NoScopeWarning, end_telemetry, id_overrides, lift_ids, name_of,
                                       static_fields, telemetry_sampler)
from flowcept.capture._codegen import generate
from flowcept import ids as _ids
from flowcept.ids import new_id
from flowcept.redact import OPTIONS_KEY as REDACT_OPTIONS_KEY, options_for
from flowcept.serialize import IMMUTABLE_TYPES, sanitize, snapshot, snapshot_values

logger = logging.getLogger("flowcept")

_scope_var = _ctx._scope
_parent_var = _ctx._parent_task


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


def _task_decorator(func: Callable, *, output_names=None, args_handler: Callable | None = None, tags=None,
                    custom_metadata: dict | None = None, subtype: str | None = None, agent_id=None,
                    source_agent_id=None, workflow_id: str | None = None, campaign_id: str | None = None,
                    capture_telemetry: bool | None = None, activity_id: str | None = None,
                    on_record: Callable[[dict], None] | None = None, redact=None, redact_allow=None) -> Callable:
    """The engine behind every task decorator.

    Integrations extend it instead of wrapping it: ``agent_id`` may be a callable returning the id for each call
    (None: no agent), and ``on_record(task)`` sees each finished task dict just before it is queued.
    """
    binder = make_binder(func)
    to_generated = make_output_mapper(output_names, args_handler)
    agent_of = agent_id if callable(agent_id) else None
    static = static_fields(func, activity_id, tags, custom_metadata, subtype,
                            None if agent_of else agent_id, source_agent_id)
    name = static["activity_id"]
    redact_options = options_for(redact, redact_allow)  # secrets: decided once; the flusher applies it
    if redact_options is not None:
        static[REDACT_OPTIONS_KEY] = redact_options
    lift_wf, lift_camp = id_overrides(func) if args_handler is None else (True, True)
    lift = lift_wf or lift_camp
    fixed_wf, fixed_camp = workflow_id, campaign_id
    no_scope = NoScopeWarning(getattr(func, "__qualname__", repr(func)))
    clock = time.time
    current_scope = _ctx.current_scope
    scope_get, parent_get, parent_set, parent_reset = _scope_var.get, _parent_var.get, _parent_var.set, \
        _parent_var.reset
    ids = _ids
    namespace = argparse.Namespace

    def begin(scope, args: tuple, kwargs: dict) -> tuple[dict, Any]:
        """The task dict as known before the call, and the telemetry sampler for it (or None)."""
        if args_handler is None:
            used = binder(args, kwargs)
            if args and type(args[0]) is namespace:
                used = {**vars(args[0]), **{k: v for k, v in used.items() if v is not args[0]}}
            snapshot_values(used)
        else:
            try:
                # As documented for the reference: the handler gets the arguments bound to parameter names.
                used = snapshot(args_handler(**binder(args, kwargs)))
            except Exception as exc:  # noqa: BLE001 - a failing handler must not stop the user's call
                report_internal_error(f"args_handler of {name}", exc)
                used = {}
        task = {"type": "task", "task_id": ids._prefix + str(next(ids._counter)),
                "workflow_id": fixed_wf or scope.workflow_id, "campaign_id": fixed_camp or scope.campaign_id,
                "used": used, **static}
        if lift and used:
            lift_ids(task, used, lift_wf, lift_camp)
        parent = parent_get()
        if parent is not None:
            task["parent_task_id"] = parent
        if agent_of is not None:
            try:
                aid = agent_of()
            except Exception as exc:  # noqa: BLE001
                report_internal_error(f"agent id of {name}", exc)
                aid = None
            if aid is not None:
                task["agent_id"] = str(aid)
        if capture_telemetry is None:
            sampler = scope.telemetry
        else:
            sampler = telemetry_sampler(scope, capture_telemetry)
        if sampler is not None:
            try:
                task["telemetry_at_start"] = sampler.snapshot()
            except Exception as exc:  # noqa: BLE001
                report_internal_error("telemetry", exc)
        return task, sampler

    def finish(task: dict, started: float, ended: float, result: Any, error: BaseException | None, sampler) -> dict:
        task["started_at"] = started
        task["ended_at"] = ended
        if error is None:
            task["status"] = "FINISHED"
            if result is not None:
                try:
                    generated = to_generated(result)
                except Exception as exc:  # noqa: BLE001
                    report_internal_error(f"outputs of {name}", exc)
                    generated = None
                if generated is not None:
                    task["generated"] = snapshot(generated)
        else:
            task["status"] = "ERROR"
            task["stderr"] = str(error) or type(error).__name__
        if sampler is not None:
            end_telemetry(task, sampler)
        if on_record is not None:
            try:
                on_record(task)
            except Exception as exc:  # noqa: BLE001
                report_internal_error(f"on_record of {name}", exc)
        return task

    if inspect.iscoroutinefunction(func):
        @functools.wraps(func)
        async def async_wrapper(*args, **kwargs):
            scope = scope_get()
            if scope is None or not scope.active:
                scope = current_scope()
                if scope is None:
                    no_scope()
                    return await func(*args, **kwargs)
            task, sampler = begin(scope, args, kwargs)
            token = parent_set(task["task_id"])
            started = clock()
            try:
                result = await func(*args, **kwargs)
            except BaseException as exc:
                parent_reset(token)
                scope.buffer.append(finish(task, started, clock(), None, exc, sampler))
                raise
            parent_reset(token)
            scope.buffer.append(finish(task, started, clock(), result, None, sampler))
            return result
        return async_wrapper

    def run_captured(scope, args: tuple, kwargs: dict):
        task, sampler = begin(scope, args, kwargs)
        token = parent_set(task["task_id"])
        started = clock()
        try:
            result = func(*args, **kwargs)
        except BaseException as exc:
            parent_reset(token)
            scope.buffer.append(finish(task, started, clock(), None, exc, sampler))
            raise
        parent_reset(token)
        scope.buffer.append(finish(task, started, clock(), result, None, sampler))
        return result

    if args_handler is not None or capture_telemetry is not None or agent_of is not None or on_record is not None:
        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            scope = scope_get()
            if scope is None or not scope.active:
                scope = current_scope()
                if scope is None:
                    no_scope()
                    return func(*args, **kwargs)
            return run_captured(scope, args, kwargs)
        return wrapper

    if output_names is None:
        single_key = "arg_0"
    elif isinstance(output_names, str):
        single_key = output_names
    elif len(output_names) == 1:
        single_key = output_names[0]
    else:
        single_key = None

    def outputs(task: dict, result: Any) -> None:
        try:
            generated = to_generated(result)
        except Exception as exc:  # noqa: BLE001
            report_internal_error(f"outputs of {name}", exc)
            return
        if generated is not None:
            task["generated"] = snapshot(generated)

    return functools.wraps(func)(generate(_TASK_TEMPLATE, func, {
        "_fc_func": func, "_fc_scope_get": scope_get, "_fc_current_scope": current_scope, "_fc_no_scope": no_scope,
        "_fc_run_captured": run_captured, "_fc_namespace": namespace, "_fc_binder": binder,
        "_fc_snapshot": snapshot, "_fc_snapshot_values": snapshot_values, "_fc_immutable": IMMUTABLE_TYPES,
        "_fc_ids": ids, "_fc_fixed_wf": fixed_wf, "_fc_fixed_camp": fixed_camp, "_fc_static": static,
        "_fc_lift": lift, "_fc_lift_ids": lift_ids, "_fc_lift_wf": lift_wf, "_fc_lift_camp": lift_camp,
        "_fc_parent_get": parent_get, "_fc_parent_set": parent_set, "_fc_parent_reset": parent_reset,
        "_fc_clock": clock, "_fc_finish": finish, "_fc_single_key": single_key, "_fc_outputs": outputs,
    }))


def _inline_emit(record: str) -> str:
    # BatchBuffer.emit's body (owned by buffer.py) for the local `_fc_buffer`, escaped for the str.format pass.
    return emit_inline("_fc_buffer", record, "    ").replace("{", "{{").replace("}", "}}")


# The common case of @flowcept_task (no args_handler, no telemetry option), generated per signature
# (see _codegen.py): the cost of every decorated call.
_TASK_TEMPLATE = """
def _fc_wrapper({params}):
    _fc_scope = _fc_scope_get()
    if _fc_scope is None or not _fc_scope.active:
        _fc_scope = _fc_current_scope()
        if _fc_scope is None:
            _fc_no_scope()
            return _fc_func({call})
    if _fc_scope.telemetry is not None or type({first_arg}) is _fc_namespace:
        return _fc_run_captured(_fc_scope, {args}, {kwargs})
    _fc_used = {used}
    _fc_task_id = _fc_ids._prefix + str(next(_fc_ids._counter))
    _fc_task = {{"type": "task", "task_id": _fc_task_id, "workflow_id": _fc_fixed_wf or _fc_scope.workflow_id,
                "campaign_id": _fc_fixed_camp or _fc_scope.campaign_id, "used": _fc_used, **_fc_static}}
    if _fc_lift and _fc_used:
        _fc_lift_ids(_fc_task, _fc_used, _fc_lift_wf, _fc_lift_camp)
    _fc_parent = _fc_parent_get()
    if _fc_parent is not None:
        _fc_task["parent_task_id"] = _fc_parent
    _fc_token = _fc_parent_set(_fc_task_id)
    _fc_started = _fc_clock()
    try:
        _fc_result = _fc_func({call})
    except BaseException as _fc_exc:
        _fc_parent_reset(_fc_token)
        _fc_scope.buffer.append(_fc_finish(_fc_task, _fc_started, _fc_clock(), None, _fc_exc, None))
        raise
    _fc_task["ended_at"] = _fc_clock()
    _fc_parent_reset(_fc_token)
    _fc_task["started_at"] = _fc_started
    _fc_task["status"] = "FINISHED"
    if _fc_result is not None:
        if _fc_single_key is not None and type(_fc_result) is not dict:
            # One output name (or none: "arg_0"): the mapping is ours, only the value needs a snapshot.
            _fc_task["generated"] = {{_fc_single_key: _fc_result if type(_fc_result) in _fc_immutable
                                     else _fc_snapshot(_fc_result)}}
        else:
            _fc_outputs(_fc_task, _fc_result)
    _fc_buffer = _fc_scope.buffer
    {emit_record}
    return _fc_result
"""
_TASK_TEMPLATE = _TASK_TEMPLATE.replace("{emit_record}", _inline_emit("_fc_task"))


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
    _check_options(options, _TASK_OPTIONS, "flowcept_task")
    if func is None:
        return lambda f: _task_decorator(f, **options)
    return _task_decorator(func, **options)


def telemetry_flowcept_task(func: Callable | None = None, **options: Any):
    """Like :func:`flowcept_task`, and always records ``telemetry_at_start``/``telemetry_at_end``.

    With telemetry capture off in the settings, a CPU/memory snapshot is taken anyway: the decorator is an
    explicit request.
    """
    _check_options(options, _TASK_OPTIONS, "telemetry_flowcept_task")
    options.setdefault("capture_telemetry", True)
    if func is None:
        return lambda f: _task_decorator(f, **options)
    return _task_decorator(func, **options)


def lightweight_flowcept_task(func: Callable | None = None, *, output_names=None):
    """Capture each call with the smallest record: id, workflow, activity, ``used`` and ``generated``.

    No timestamps, telemetry or parent links; a call that raises is recorded with ``status: ERROR`` and its
    message in ``stderr``, and the exception propagates unchanged. The cheapest way to trace very hot functions.
    """
    if func is None:
        return lambda f: lightweight_flowcept_task(f, output_names=output_names)
    binder = make_binder(func)
    to_generated = make_output_mapper(output_names, None)
    name = name_of(func)
    no_scope = NoScopeWarning(getattr(func, "__qualname__", repr(func)))
    current_scope = _ctx.current_scope

    if inspect.iscoroutinefunction(func):
        @functools.wraps(func)
        async def async_light(*args, **kwargs):
            try:
                result = await func(*args, **kwargs)
            except BaseException as exc:
                scope = current_scope()
                if scope is not None:
                    scope.buffer.append({"type": "task", "task_id": new_id(), "workflow_id": scope.workflow_id,
                                         "activity_id": name, "used": binder(args, kwargs), "status": "ERROR",
                                         "stderr": str(exc) or type(exc).__name__})
                raise
            scope = current_scope()
            if scope is None:
                no_scope()
                return result
            scope.buffer.append({"type": "task", "task_id": new_id(), "workflow_id": scope.workflow_id,
                                 "activity_id": name, "used": snapshot_values(binder(args, kwargs)),
                                 "generated": snapshot(to_generated(result))})
            return result
        return async_light

    def record_error(exc: BaseException, used: dict) -> None:
        scope = current_scope()
        if scope is not None:
            scope.buffer.append({"type": "task", "task_id": new_id(), "workflow_id": scope.workflow_id,
                                 "activity_id": name, "used": used, "status": "ERROR",
                                 "stderr": str(exc) or type(exc).__name__})

    return functools.wraps(func)(generate(_LIGHT_TEMPLATE, func, {
        "_fc_func": func, "_fc_error": record_error, "_fc_scope_get": _scope_var.get,
        "_fc_current_scope": current_scope, "_fc_no_scope": no_scope, "_fc_mapped": output_names is not None,
        "_fc_to_generated": to_generated, "_fc_snapshot": snapshot, "_fc_snapshot_values": snapshot_values,
        "_fc_immutable": IMMUTABLE_TYPES, "_fc_binder": binder, "_fc_ids": _ids, "_fc_name": name,
    }))


_LIGHT_TEMPLATE = """
def _fc_wrapper({params}):
    _fc_used = {used}  # before the call: inputs as they were passed, whatever the function does to them
    try:
        _fc_result = _fc_func({call})
    except BaseException as _fc_exc:
        _fc_error(_fc_exc, _fc_used)
        raise
    _fc_scope = _fc_scope_get()
    if _fc_scope is None or not _fc_scope.active:
        _fc_scope = _fc_current_scope()
        if _fc_scope is None:
            _fc_no_scope()
            return _fc_result
    if _fc_mapped or _fc_result is None or type(_fc_result) is dict:
        _fc_generated = _fc_snapshot(_fc_to_generated(_fc_result))
    else:
        _fc_generated = {{"arg_0": _fc_result if type(_fc_result) in _fc_immutable else _fc_snapshot(_fc_result)}}
    _fc_record = {{"type": "task", "task_id": _fc_ids._prefix + str(next(_fc_ids._counter)),
                   "workflow_id": _fc_scope.workflow_id, "activity_id": _fc_name, "used": _fc_used,
                   "generated": _fc_generated}}
    _fc_buffer = _fc_scope.buffer
    {emit_record}
    return _fc_result
"""
_LIGHT_TEMPLATE = _LIGHT_TEMPLATE.replace("{emit_record}", _inline_emit("_fc_record"))


_TASK_OPTIONS = frozenset({
    "output_names", "args_handler", "tags", "custom_metadata", "subtype", "agent_id", "source_agent_id",
    "workflow_id", "campaign_id", "capture_telemetry", "activity_id", "agent_name", "source_agent_name",
    "redact", "redact_allow",
})


def _check_options(options: dict, allowed: frozenset, where: str) -> None:
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise TypeError(f"{where}() got unexpected option(s) {', '.join(unknown)}; "
                        f"accepted: {', '.join(sorted(allowed))}")
    options.pop("agent_name", None)
    options.pop("source_agent_name", None)


def get_current_context_task_id() -> str | None:
    """Id of the task whose function is running now (the parent of anything captured inside it)."""
    return _parent_var.get()
