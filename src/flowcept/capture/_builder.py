"""The task record, built in one place: what is fixed at decoration time, start, finish and error.

:class:`TaskSpec` holds every per-function decision, made once when a function is decorated (parameter names,
output mapping, static fields, which optional steps apply). :func:`make_wrapper` turns a spec into the wrapper,
generated from one template (:data:`_TEMPLATE`) for sync and async functions, full and lightweight records, with
the steps the spec does not need left out of the source. Every path takes the inputs' snapshot before the call.
``FlowceptTask``, the loops, torch and agent capture take their static fields and telemetry steps from here too.

To add a per-function decision, compute it in ``TaskSpec.__init__`` (as the redaction options are) and apply it
where inputs are taken: :meth:`TaskSpec.input_expression` (the generated fast path, one expression per parameter)
and :meth:`TaskSpec.inputs` (the generic path), or carry it in ``static`` for the flusher.
"""

from __future__ import annotations

import argparse
import functools
import inspect
import logging
import time
from typing import Any, Callable

from flowcept import context as _ctx
from flowcept._internal_errors import guarded, internal_errors, report_internal_error
from flowcept._runtime import RUNTIME, hostname
from flowcept.buffer import emit_inline
from flowcept.capture._binding import make_binder, make_output_mapper
from flowcept.capture._codegen import GENERIC, generate, signature_fields
from flowcept.ids import NEW_ID_INLINE
from flowcept.redact import OPTIONS_KEY as REDACT_OPTIONS_KEY, options_for
from flowcept.serialize import IMMUTABLE_TYPES, snapshot, snapshot_expression, snapshot_values

logger = logging.getLogger("flowcept")

_scope_var = _ctx._scope
_parent_var = _ctx._parent_task


class TaskSpec:
    """Everything decided once for one decorated function.

    Args:
        func: the function.
        lightweight: the smallest record (id, workflow, activity, ``used``, ``generated``; on error ``status`` and
            ``stderr``): no timestamps, telemetry, parent links or options.
        output_names, args_handler, tags, custom_metadata, subtype, agent_id, source_agent_id, workflow_id,
            campaign_id, capture_telemetry, activity_id: as documented on :func:`flowcept_task`; ``agent_id`` may
            be a callable giving the id per call (None: no agent).
        on_record: sees each finished task dict just before it is queued (agent capture).
        redact, redact_allow: per-function redaction options (:func:`flowcept.redact.options_for`), carried in the
            static fields and applied on the flusher thread.
    """

    def __init__(self, func: Callable, *, lightweight: bool = False, output_names=None,
                 args_handler: Callable | None = None, tags=None, custom_metadata: dict | None = None,
                 subtype: str | None = None, agent_id=None, source_agent_id=None, workflow_id: str | None = None,
                 campaign_id: str | None = None, capture_telemetry: bool | None = None,
                 activity_id: str | None = None, on_record: Callable[[dict], None] | None = None,
                 redact=None, redact_allow=None):
        self.func = func
        self.lightweight = lightweight
        self.is_async = inspect.iscoroutinefunction(func)
        self.binder = make_binder(func)
        self.args_handler = args_handler
        self.to_generated = make_output_mapper(output_names, args_handler)
        # One output name (or none: "arg_0") and no handler: the mapping is known, only the value needs a snapshot.
        if args_handler is not None:
            self.single_key = None
        elif output_names is None:
            self.single_key = "arg_0"
        elif isinstance(output_names, str):
            self.single_key = output_names
        else:
            self.single_key = output_names[0] if len(output_names) == 1 else None
        self.agent_of = agent_id if callable(agent_id) else None
        if lightweight:
            self.static = {"activity_id": activity_id or name_of(func)}
        else:
            self.static = static_fields(func, activity_id, tags, custom_metadata, subtype,
                                        None if self.agent_of else agent_id, source_agent_id)
        self.name = self.static["activity_id"]
        redact_options = options_for(redact, redact_allow)  # secrets: decided once; the flusher applies it
        if redact_options is not None:
            self.static[REDACT_OPTIONS_KEY] = redact_options
        self.workflow_id = workflow_id
        self.campaign_id = campaign_id
        self.var_keyword: str | None = None  # the name of func's **kwargs, where such inputs may also come
        if lightweight:
            self.lift_wf = self.lift_camp = False
        elif args_handler is None:
            self.lift_wf, self.lift_camp, self.var_keyword = id_overrides(func)
        else:
            self.lift_wf = self.lift_camp = True
        self.capture_telemetry = capture_telemetry
        self.on_record = on_record
        self.no_scope = NoScopeWarning(getattr(func, "__qualname__", repr(func)))
        #: ``result -> generated dict`` (snapshotted; None when there is nothing); a failure is reported, gives None.
        self.generated: Callable[[Any], dict | None] = guarded(f"outputs of {self.name}")(
            functools.partial(_generated, self.to_generated))

    # ---- inputs: taken before the call, in every path ---------------------------------------------------------
    def input_expression(self, name: str) -> str:
        """Source of the expression giving the snapshotted value of parameter ``name`` (generated fast path)."""
        return snapshot_expression(name)

    def inputs(self, args: tuple, kwargs: dict) -> dict:
        """The snapshotted ``used`` dict of one call (generic path: any signature, ``args_handler``)."""
        if self.args_handler is None:
            used = self.binder(args, kwargs)
            if args and type(args[0]) is argparse.Namespace and not self.lightweight:
                return flatten_namespace(snapshot_values(used), args[0])
            return snapshot_values(used)
        try:
            # As documented for the reference: the handler gets the arguments bound to parameter names.
            return snapshot(self.args_handler(**self.binder(args, kwargs)))
        except Exception as exc:  # noqa: BLE001 - a failing handler must not stop the user's call
            report_internal_error(f"args_handler of {self.name}", exc)
            return {}

    # ---- start, finish, error ---------------------------------------------------------------------------------
    def sampler(self, scope) -> Any:
        """The telemetry sampler for a call in ``scope`` (None: no telemetry)."""
        if self.capture_telemetry is None:
            return scope.telemetry
        return telemetry_sampler(scope, self.capture_telemetry)

    def lift_ids(self, task: dict, used: dict) -> None:
        """A non-empty string input named ``workflow_id``/``campaign_id`` (a parameter, or a keyword argument taken by
        ``**kwargs``) routes the task; None never blanks it."""
        extra = used.get(self.var_keyword) if self.var_keyword is not None else None
        if type(extra) is not dict:
            extra = {}
        if self.lift_wf:
            wf = used.get("workflow_id") or extra.get("workflow_id")
            if isinstance(wf, str) and wf:
                task["workflow_id"] = wf
        if self.lift_camp:
            camp = used.get("campaign_id") or extra.get("campaign_id")
            if isinstance(camp, str) and camp:
                task["campaign_id"] = camp

    def add_agent(self, task: dict) -> None:
        """Stamp the per-call agent id (``agent_id`` given as a callable)."""
        with internal_errors(f"agent id of {self.name}"):
            aid = self.agent_of()
            if aid is not None:
                task["agent_id"] = str(aid)

    def finished(self, task: dict) -> None:
        """Let ``on_record`` see the finished task."""
        with internal_errors(f"on_record of {self.name}"):
            self.on_record(task)

    def fail(self, scope, task: dict, error: BaseException, started: float | None, sampler) -> None:
        """Record a call that raised ``error`` (``status: ERROR``, message in ``stderr``) and queue it."""
        with internal_errors(f"recording the error of {self.name}"):
            task["status"] = "ERROR"
            task["stderr"] = error_text(error)
            if started is not None:
                task["started_at"] = started
                task["ended_at"] = time.time()
            if sampler is not None:
                end_telemetry(task, sampler)
            if self.on_record is not None:
                self.finished(task)
            scope.buffer.emit(task)


def error_text(error: BaseException) -> str:
    """The ``stderr`` of a task that raised ``error``: its message, or its class name when it has none or when its
    ``__str__`` fails (which must neither replace the user's exception nor lose the record)."""
    try:
        return str(error) or type(error).__name__
    except Exception:  # noqa: BLE001
        return type(error).__name__


def _generated(to_generated: Callable[[Any], dict | None], result: Any) -> dict | None:
    out = to_generated(result)
    return snapshot(out) if out is not None else None


def flatten_namespace(used: dict, namespace: argparse.Namespace) -> dict:
    """``used`` with an ``argparse.Namespace`` argument replaced by its attributes (the documented default)."""
    flat = snapshot_values(dict(vars(namespace)))
    flat.update((k, v) for k, v in used.items() if v is not namespace)
    return flat


# The wrapper of every decorated function. Lines tagged `#@<flag>` stay only when the spec needs that step:
# full (timestamps, status, parent links, telemetry), light (the lightweight record, built after the call),
# namespace (an argparse.Namespace first argument is flattened), lift (inputs named workflow_id/campaign_id route
# the task), agent (per-call agent id), on_record. Values are filled in by `_source` and _codegen.signature_fields.
_TEMPLATE = """
{async_}def _fc_wrapper({params}):
    _fc_scope = _fc_scope_get()
    if _fc_scope is None or not _fc_scope.active:
        _fc_scope = _fc_current_scope()
        if _fc_scope is None:
            _fc_no_scope()
            return {await_}_fc_func({call})
    _fc_used = {used}
    if type({first_arg}) is _fc_namespace:  #@namespace
        _fc_used = _fc_flatten(_fc_used, {first_arg})  #@namespace
    _fc_task = {{"type": "task", "task_id": {new_id}, {fields}}}  #@full
    if _fc_used:  #@lift
        _fc_spec.lift_ids(_fc_task, _fc_used)  #@lift
    _fc_spec.add_agent(_fc_task)  #@agent
    _fc_parent = _fc_parent_get()  #@full
    if _fc_parent is not None:  #@full
        _fc_task["parent_task_id"] = _fc_parent  #@full
    _fc_sampler = {sampler}  #@full
    if _fc_sampler is not None:  #@full
        _fc_start_telemetry(_fc_task, _fc_sampler)  #@full
    _fc_token = _fc_parent_set(_fc_task["task_id"])  #@full
    _fc_started = _fc_clock()  #@full
    try:
        _fc_result = {await_}_fc_func({call})
    except BaseException as _fc_exc:
        _fc_parent_reset(_fc_token)  #@full
        _fc_spec.fail(_fc_scope, _fc_task, _fc_exc, _fc_started, _fc_sampler)  #@full
        _fc_spec.fail(_fc_scope, {{"type": "task", "task_id": {new_id}, {fields}}}, _fc_exc, None, None)  #@light
        raise
    _fc_task["ended_at"] = _fc_clock()  #@full
    _fc_parent_reset(_fc_token)  #@full
    _fc_task["started_at"] = _fc_started  #@full
    _fc_task["status"] = "FINISHED"  #@full
    if _fc_result is None:
        _fc_generated = None
    elif _fc_single_key is not None and type(_fc_result) is not dict:
        _fc_generated = {{_fc_single_key: {result_value}}}
    else:
        _fc_generated = _fc_spec.generated(_fc_result)
    if _fc_generated is not None:  #@full
        _fc_task["generated"] = _fc_generated  #@full
    # The lightweight record is built in one piece after the call (a dict literal, no growth).  #@light
    _fc_task = {{"type": "task", "task_id": {new_id}, {fields}, "generated": _fc_generated}}  #@light
    if _fc_sampler is not None:  #@full
        _fc_end_telemetry(_fc_task, _fc_sampler)  #@full
    _fc_spec.finished(_fc_task)  #@on_record
    _fc_buffer = _fc_scope.buffer
    {emit}
    return _fc_result
"""


def _source(spec: TaskSpec, fields: dict[str, str], simple: bool) -> tuple[str, dict[str, Any]]:
    """The wrapper source for ``spec`` and the constants it refers to."""
    flags = {
        "full": not spec.lightweight,
        "light": spec.lightweight,
        # The documented argparse flattening is @flowcept_task's; the lightweight record keeps arguments as passed.
        "namespace": simple and fields["first_arg"] != "None" and spec.args_handler is None and not spec.lightweight,
        "lift": spec.lift_wf or spec.lift_camp,
        "agent": spec.agent_of is not None,
        "on_record": spec.on_record is not None,
    }
    lines = []
    for line in _TEMPLATE.splitlines():
        code, _, flag = line.partition("  #@")
        if not flag or flags[flag]:
            lines.append(code)
    constants: dict[str, Any] = {}
    record: list[str] = []
    ids = {"workflow_id": spec.workflow_id, "campaign_id": spec.campaign_id}
    for key in ("workflow_id", "campaign_id"):
        if spec.lightweight and key == "campaign_id":
            continue
        if ids[key] is not None:
            constants[f"_fc_fixed_{key}"] = ids[key]
            record.append(f"{key!r}: _fc_fixed_{key}")
        else:
            record.append(f"{key!r}: _fc_scope.{key}")
    record.append('"used": _fc_used')
    for i, (key, value) in enumerate(spec.static.items()):
        constants[f"_fc_static_{i}"] = value
        record.append(f"{key!r}: _fc_static_{i}")
    values = {
        "async_": "async " if spec.is_async else "",
        "await_": "await " if spec.is_async else "",
        "new_id": NEW_ID_INLINE,
        "result_value": snapshot_expression("_fc_result"),
        "fields": ", ".join(record),
        "sampler": "_fc_scope.telemetry" if spec.capture_telemetry is None else "_fc_spec.sampler(_fc_scope)",
        # BatchBuffer.emit's body, from buffer.py: one call less per record.
        "emit": emit_inline("_fc_buffer", "_fc_task", "    "),
    }
    template = "\n".join(lines)
    return template.format(**fields, **values), constants


#: The options every task decorator accepts (``agent_name`` and ``source_agent_name`` are accepted and ignored).
TASK_OPTIONS = frozenset({
    "output_names", "args_handler", "tags", "custom_metadata", "subtype", "agent_id", "source_agent_id",
    "workflow_id", "campaign_id", "capture_telemetry", "activity_id", "agent_name", "source_agent_name",
    "redact", "redact_allow",
})


def check_options(options: dict, allowed: frozenset, where: str) -> None:
    """Refuse options ``where`` does not accept, naming them and the accepted ones; drop the ignored ones."""
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise TypeError(f"{where}() got unexpected option(s) {', '.join(unknown)}; "
                        f"accepted: {', '.join(sorted(allowed))}")
    options.pop("agent_name", None)
    options.pop("source_agent_name", None)


def task_wrapper(func: Callable, **options: Any) -> Callable:
    """The capture wrapper of ``func`` for ``options`` (see :class:`TaskSpec`): the engine of every task decorator.

    Integrations extend it instead of wrapping it: ``agent_id`` may be a callable returning the id for each call
    (None: no agent), and ``on_record(task)`` sees each finished task dict just before it is queued.
    """
    return make_wrapper(TaskSpec(func, **options))


def make_wrapper(spec: TaskSpec) -> Callable:
    """The capture wrapper of ``spec.func``: generated for its signature, with only the steps ``spec`` needs."""
    if spec.args_handler is not None:
        fields, defaults = signature_fields(None, spec.input_expression)
    else:
        fields, defaults = signature_fields(spec.func, spec.input_expression)
    source, constants = _source(spec, fields, simple=fields["params"] != GENERIC["params"])
    wrapper = generate(source, spec.func, {
        "_fc_func": spec.func, "_fc_spec": spec, "_fc_scope_get": _scope_var.get,
        "_fc_current_scope": _ctx.current_scope, "_fc_no_scope": spec.no_scope, "_fc_inputs": spec.inputs,
        "_fc_namespace": argparse.Namespace, "_fc_flatten": flatten_namespace, "_fc_rt": RUNTIME,
        "_fc_parent_get": _parent_var.get, "_fc_parent_set": _parent_var.set, "_fc_parent_reset": _parent_var.reset,
        "_fc_clock": time.time, "_fc_start_telemetry": start_telemetry, "_fc_end_telemetry": end_telemetry,
        "_fc_single_key": spec.single_key, "_fc_immutable": IMMUTABLE_TYPES, "_fc_snapshot": snapshot,
        **constants, **defaults,
    })
    return functools.wraps(spec.func)(wrapper)


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


def static_fields(func: Callable | None, activity_id: str | None, tags, custom_metadata, subtype, agent_id,
                  source_agent_id, host: str | None = None) -> dict:
    """The fields a task record carries whatever the call: activity, host, subtype, agents, tags, metadata.

    None values are left out (records carry no nulls); ``tags`` may be one string; agent ids become strings.
    """
    # Plain ifs, no intermediate dict: FlowceptTask calls this once per task.
    fields: dict = {}
    activity = activity_id or (name_of(func) if func is not None else None)
    if activity is not None:
        fields["activity_id"] = activity
    fields["hostname"] = host or RUNTIME.host or hostname()
    if subtype is not None:
        fields["subtype"] = subtype
    if agent_id is not None:
        fields["agent_id"] = str(agent_id)
    if source_agent_id is not None:
        fields["source_agent_id"] = str(source_agent_id)
    if tags:
        fields["tags"] = [tags] if isinstance(tags, str) else list(tags)
    if custom_metadata:
        fields["custom_metadata"] = dict(custom_metadata)
    return fields


def id_overrides(func: Callable) -> tuple[bool, bool, str | None]:
    """Whether calls may carry ``workflow_id`` / ``campaign_id`` among their inputs (parameters or **kwargs), and
    the name of the **kwargs parameter (None: none)."""
    try:
        params = inspect.signature(func).parameters
    except (TypeError, ValueError):
        return True, True, None
    var_kw = next((p.name for p in params.values() if p.kind is inspect.Parameter.VAR_KEYWORD), None)
    return var_kw is not None or "workflow_id" in params, var_kw is not None or "campaign_id" in params, var_kw


@guarded("telemetry")
def start_telemetry(task: dict, sampler) -> None:
    """Add ``telemetry_at_start`` to a task being opened."""
    task["telemetry_at_start"] = sampler.snapshot()


@guarded("telemetry")
def end_telemetry(task: dict, sampler) -> None:
    """Add ``telemetry_at_end`` (and the summary, when the start snapshot exists) to a task being closed."""
    task["telemetry_at_end"] = sampler.snapshot()
    if "telemetry_at_start" in task:
        from flowcept.capture.telemetry import summarize

        with internal_errors("telemetry summary"):
            task["telemetry_summary"] = summarize(task["telemetry_at_start"], task["telemetry_at_end"])
