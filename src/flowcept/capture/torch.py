"""``@flowcept_torch``: each forward call of a ``torch.nn.Module`` becomes a task, with its child modules' forwards
as child tasks, plus the epoch and batch loops that link forwards to training iterations.

Records (all in the running Flowcept's workflow, so ``task_query({"workflow_id": wf})`` finds them):

* parent forward (``subtype: "parent_forward"``, ``activity_id``: the model's class name): ``used`` and ``generated``
  hold tensor metadata (shape, dtype, device, nbytes; never contents), ``custom_metadata`` holds ``is_training``
  and the user's ``custom_metadata``; parent: the model's explicit parent (constructor, ``new_epoch``,
  ``new_batch``), else the enclosing task or loop iteration.
* child forward (``subtype: "child_forward"``), for every submodule at any depth when
  ``instrumentation.torch.what`` is ``parent_and_children``; parent: the enclosing module's forward task. What they
  carry follows ``children_mode`` (telemetry parts only when telemetry capture is on).
* model workflow (when ``torch.register_workflow``): one workflow record per model and running workflow, with
  ``parent_workflow_id`` = the running workflow, ``name`` = the class name, the profile when ``get_profile=True``;
  forward tasks point at it through ``custom_metadata.model_workflow_id``.

torch is imported lazily: ``import flowcept`` never loads it.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import time
from typing import Any

from flowcept import context as _ctx
from flowcept._internal_errors import internal_errors
from flowcept._runtime import hostname
from flowcept.capture._builder import NoScopeWarning, end_telemetry, error_text
from flowcept.capture.loop import FlowceptLightweightLoop, FlowceptLoop
from flowcept.ids import new_id, new_uuid

_scope_var = _ctx._scope
_parent_var = _ctx._parent_task
_OPTIONS = ("get_profile", "custom_metadata", "parent_task_id", "parent_workflow_id", "campaign_id",
            "save_workflow", "capture_enabled")
_device_names: dict = {}
_dtype_names: dict = {}


def _tensor_type():
    import torch

    return torch.Tensor


def tensor_metadata(t) -> dict:
    """Shape, dtype, device and size in bytes of a tensor (its contents are never read)."""
    dtype = t.dtype
    name = _dtype_names.get(dtype)
    if name is None:
        name = _dtype_names[dtype] = str(dtype).removeprefix("torch.")
    device = t.device
    dev = _device_names.get(device)
    if dev is None:
        dev = _device_names[device] = str(device)
    try:
        nbytes = t.nbytes
    except RuntimeError:  # sparse and other layouts define no nbytes: the stored values' size
        nbytes = t.element_size() * (t._nnz() if t.is_sparse else t.numel())
    return {"shape": list(t.shape), "dtype": name, "device": dev, "nbytes": nbytes}


def _describe(value, tensor_cls):
    """Tensor metadata for tensors (also inside tuples, lists, dicts and dataclasses, such as a model's output
    object); other values as they are."""
    if isinstance(value, tensor_cls):
        return tensor_metadata(value)
    if isinstance(value, (tuple, list)):
        return [_describe(v, tensor_cls) for v in value]
    if isinstance(value, dict):
        return {str(k): _describe(v, tensor_cls) for k, v in value.items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _describe(getattr(value, f.name, None), tensor_cls) for f in dataclasses.fields(value)}
    return value


def _inputs(args: tuple, kwargs: dict, tensor_cls) -> dict:
    if len(args) == 1 and not kwargs and isinstance(args[0], tensor_cls):
        return {"tensor": tensor_metadata(args[0])}
    used = {}
    for i, arg in enumerate(args):
        used["tensor" if i == 0 else f"arg_{i}"] = _describe(arg, tensor_cls)
    for k, v in kwargs.items():
        used[k] = _describe(v, tensor_cls)
    return used


def _outputs(out, tensor_cls) -> dict | None:
    if isinstance(out, tensor_cls):
        return {"tensor": tensor_metadata(out)}
    if out is None:
        return None
    return {"tensor": _describe(out, tensor_cls)}


def get_torch_model_profile(model) -> dict:
    """A summary of a model: parameter counts, module count, widest layer, per-module attributes and its repr.

    Returns:
        ``{"params", "trainable_params", "max_width", "n_modules", "modules": {<name>: {...}}, "model_repr"}``;
        ``modules`` is keyed by the dotted module name (``""`` is the model itself).
    """
    params = trainable = 0
    for p in model.parameters():
        n = p.numel()
        params += n
        if p.requires_grad:
            trainable += n
    widths = ("in_features", "out_features", "in_channels", "out_channels", "hidden_size", "embedding_dim",
              "num_embeddings", "d_model")
    max_width = 0
    modules = {}
    for name, module in model.named_modules():
        info: dict[str, Any] = {"type": type(module).__name__,
                                "params": sum(p.numel() for p in module.parameters(recurse=False))}
        for key, value in vars(module).items():
            if key.startswith("_") or key == "training":
                continue
            if isinstance(value, (bool, int, float, str)) or (
                    isinstance(value, tuple) and all(isinstance(v, (int, float, str, bool)) for v in value)):
                info[key] = value
        for key in widths:
            value = getattr(module, key, None)
            if isinstance(value, int) and not isinstance(value, bool):
                max_width = max(max_width, value)
        modules[name] = info
    return {"params": params, "trainable_params": trainable, "max_width": max_width, "n_modules": len(modules),
            "modules": modules, "model_repr": repr(model)}


class _ModelCapture:
    """Per-model capture state, kept out of ``nn.Module``'s attribute machinery."""

    __slots__ = ("on", "activity", "parent", "campaign_id", "parent_workflow_id", "save_workflow", "meta_train",
                 "meta_eval", "custom_metadata", "profile", "registered_for", "model_workflow_id", "epoch", "every",
                 "next_epoch", "children", "children_mode", "depth", "tensor_cls")

    def __init__(self):
        self.depth = 0  # > 0 while a captured parent forward runs: children record only then
        self.epoch = 0  # index of the current epoch (0 until new_epoch is called)
        self.next_epoch = 0
        self.registered_for = None
        self.model_workflow_id = None


def _split_options(cls, kwargs: dict) -> dict:
    """Take our constructor options out of ``kwargs``, leaving those the user's ``__init__`` names itself."""
    try:
        accepted = inspect.signature(cls.__init__).parameters
    except (TypeError, ValueError):
        accepted = {}
    options = {}
    for name in _OPTIONS:
        if name in kwargs:
            options[name] = kwargs[name] if name in accepted else kwargs.pop(name)
    return options


def flowcept_torch(cls):
    """Class decorator for a ``torch.nn.Module``: each forward call is captured as a task.

    Returns a subclass of ``cls`` with the same name. Its constructor also takes these keyword arguments (they
    are not passed to ``cls.__init__`` unless it names them):

    Args:
        get_profile: store :func:`get_torch_model_profile` on the model's workflow record.
        custom_metadata: a dict stored on every forward task (next to ``is_training``) and the workflow record.
        parent_task_id: parent of the forward tasks; default: the enclosing task or loop iteration.
        parent_workflow_id, campaign_id: for the model's workflow record; default: the running workflow's.
        save_workflow: False skips the model's workflow record.
        capture_enabled: False turns capture off for this model.

    Capture follows ``instrumentation.enabled`` and ``instrumentation.torch`` (``what``, ``children_mode``,
    ``capture_epochs_at_every``, ``register_workflow``); without a running Flowcept the model runs as is.
    """
    base_forward = cls.forward
    no_scope = NoScopeWarning(f"{cls.__qualname__}.forward")

    class Instrumented(cls):
        def __init__(self, *args: Any, **kwargs: Any):
            options = _split_options(cls, kwargs)
            super().__init__(*args, **kwargs)
            _setup(self, cls, options)

        def forward(self, *args: Any, **kwargs: Any):
            st = self.__dict__["_flowcept"]
            if not st.on:
                return base_forward(self, *args, **kwargs)
            scope = _scope_var.get()
            if scope is None or not scope.active:
                scope = _ctx.current_scope()
                if scope is None:
                    no_scope()
                    return base_forward(self, *args, **kwargs)
            if st.epoch % st.every:
                return base_forward(self, *args, **kwargs)
            if st.registered_for is not scope:
                _register(self, st, scope)
            tid = new_id()
            parent = st.parent or _parent_var.get()
            token = _parent_var.set(tid)
            st.depth += 1
            started = time.time()
            try:
                out = base_forward(self, *args, **kwargs)
            except BaseException as exc:
                ended = time.time()
                st.depth -= 1
                _parent_var.reset(token)
                rec = _forward_record(st, scope, tid, parent, started, ended, args, kwargs, None, self.training)
                rec["status"] = "ERROR"
                rec["stderr"] = error_text(exc)
                scope.buffer.emit(rec)
                raise
            ended = time.time()
            st.depth -= 1
            _parent_var.reset(token)
            scope.buffer.emit(_forward_record(st, scope, tid, parent, started, ended, args, kwargs, out,
                                                self.training))
            return out

        def new_epoch(self, parent_task_id: str | None = None) -> None:
            """Start an epoch: later forwards get ``parent_task_id`` as parent; counts epochs for
            ``capture_epochs_at_every``."""
            st = self.__dict__["_flowcept"]
            st.epoch = st.next_epoch
            st.next_epoch += 1
            st.parent = parent_task_id

        def new_batch(self, parent_task_id: str | None = None) -> None:
            """Start a batch: later forwards get ``parent_task_id`` as parent."""
            self.__dict__["_flowcept"].parent = parent_task_id

    Instrumented.__name__ = cls.__name__
    Instrumented.__qualname__ = cls.__qualname__
    Instrumented.__module__ = cls.__module__
    Instrumented.__doc__ = cls.__doc__
    functools.update_wrapper(Instrumented.forward, base_forward, updated=())
    Instrumented.forward.__wrapped__ = base_forward
    return Instrumented


def _setup(model, cls, options: dict) -> None:
    from flowcept.settings import get_settings

    settings = get_settings()
    tcfg = settings.instrumentation.torch
    st = _ModelCapture()
    st.tensor_cls = _tensor_type()
    st.on = bool(options.get("capture_enabled", True) and settings.instrumentation.enabled and tcfg.what)
    st.activity = cls.__name__
    st.parent = options.get("parent_task_id")
    st.campaign_id = options.get("campaign_id")
    st.parent_workflow_id = options.get("parent_workflow_id")
    st.save_workflow = bool(options.get("save_workflow", True)) and tcfg.register_workflow
    st.custom_metadata = dict(options.get("custom_metadata") or {})
    st.meta_train = {**st.custom_metadata, "is_training": True}
    st.meta_eval = {**st.custom_metadata, "is_training": False}
    st.every = max(1, int(tcfg.capture_epochs_at_every))
    st.children_mode = tcfg.children_mode or "lightweight"
    st.profile = None
    if options.get("get_profile"):
        with internal_errors("torch model profile"):
            st.profile = get_torch_model_profile(model)
    # Plain instance attribute: nn.Module.__setattr__ would try to register it.
    object.__setattr__(model, "_flowcept", st)
    st.children = []
    if st.on and tcfg.what == "parent_and_children":
        for name, child in model.named_modules():
            if child is model:
                continue
            _instrument_child(st, name, child)


def _register(model, st: _ModelCapture, scope) -> None:
    """Emit the model's workflow record once per running workflow (and point the forward tasks at it)."""
    st.registered_for = scope
    if not st.save_workflow:
        st.model_workflow_id = None
        meta = {}
    else:
        st.model_workflow_id = new_uuid()
        custom = {**st.custom_metadata, "workflow_type": "TorchModule"}
        if st.profile is not None:
            custom["model_profile"] = st.profile
        scope.buffer.emit({
            "type": "workflow", "workflow_id": st.model_workflow_id, "name": st.activity,
            "parent_workflow_id": st.parent_workflow_id or scope.workflow_id,
            "campaign_id": st.campaign_id or scope.campaign_id, "used": {"capture_at_every": st.every},
            "custom_metadata": custom, "started_at": time.time(), "hostname": hostname(),
        })
        meta = {"model_workflow_id": st.model_workflow_id}
    st.meta_train = {**st.custom_metadata, **meta, "is_training": True}
    st.meta_eval = {**st.custom_metadata, **meta, "is_training": False}


def _forward_record(st: _ModelCapture, scope, tid: str, parent, started: float, ended: float, args: tuple,
                    kwargs: dict, out, training: bool) -> dict:
    rec = {"type": "task", "task_id": tid, "workflow_id": scope.workflow_id,
           "campaign_id": st.campaign_id or scope.campaign_id, "activity_id": st.activity,
           "subtype": "parent_forward", "parent_task_id": parent, "started_at": started, "ended_at": ended,
           "status": "FINISHED", "hostname": hostname(),
           "custom_metadata": st.meta_train if training else st.meta_eval}
    tensor_cls = st.tensor_cls
    with internal_errors("torch tensor metadata"):
        rec["used"] = _inputs(args, kwargs, tensor_cls)
        if out is not None:
            rec["generated"] = _outputs(out, tensor_cls)
    if scope.telemetry is not None:
        end_telemetry(rec, scope.telemetry)
    return rec


def _instrument_child(st: _ModelCapture, name: str, child) -> None:
    """Replace ``child.forward`` on the instance with a capturing wrapper (the class stays untouched)."""
    orig = child.forward
    activity = type(child).__name__
    meta = {"module_name": name}
    mode = st.children_mode
    inspect_tensors = "tensor_inspection" in mode
    telemetry = "telemetry" in mode
    clock = time.time

    def forward(*args: Any, **kwargs: Any):
        if not st.depth:
            return orig(*args, **kwargs)
        scope = _scope_var.get()
        if scope is None or not scope.active:
            scope = _ctx.current_scope()
            if scope is None:
                return orig(*args, **kwargs)
        tid = new_id()
        parent = _parent_var.get()
        token = _parent_var.set(tid)
        started = clock()
        try:
            out = orig(*args, **kwargs)
        except BaseException as exc:
            _parent_var.reset(token)
            scope.buffer.emit({"type": "task", "task_id": tid, "workflow_id": scope.workflow_id,
                                 "activity_id": activity, "subtype": "child_forward", "parent_task_id": parent,
                                 "started_at": started, "ended_at": clock(), "status": "ERROR",
                                 "stderr": error_text(exc), "custom_metadata": meta})
            raise
        ended = clock()
        _parent_var.reset(token)
        rec = {"type": "task", "task_id": tid, "workflow_id": scope.workflow_id, "activity_id": activity,
               "subtype": "child_forward", "parent_task_id": parent, "started_at": started, "ended_at": ended,
               "status": "FINISHED", "custom_metadata": meta}
        if inspect_tensors:
            with internal_errors("torch tensor metadata"):
                rec["used"] = _inputs(args, kwargs, st.tensor_cls)
                if out is not None:
                    rec["generated"] = _outputs(out, st.tensor_cls)
        if telemetry and scope.telemetry is not None:
            end_telemetry(rec, scope.telemetry)
        scope.buffer.emit(rec)
        return out

    # A plain instance attribute shadows the class's forward; nn.Module.__call__ looks it up per call.
    object.__setattr__(child, "forward", forward)
    st.children.append(child)


# ------------------------------------------------------------------------------------------------ loops
class FlowceptEpochLoop:
    """Loop over epochs (``loop_name="epochs_loop"``, ``item_name="epoch"``) that points ``model``'s forwards at
    the current epoch iteration.

    The iteration records follow ``instrumentation.torch.epoch_loop``: ``lightweight`` (default) or ``default``
    (a :class:`FlowceptLoop`); null turns the loop's capture off (the model's forwards are still captured).

    Args:
        items: epochs (an int or an iterable).
        model: a ``@flowcept_torch`` model.
        parent_task_id, workflow_id, capture_enabled: as in :class:`FlowceptLoop`.
    """

    def __new__(cls, *args: Any, **kwargs: Any):
        if cls is FlowceptEpochLoop:
            from flowcept.settings import get_settings

            mode = get_settings().instrumentation.torch.epoch_loop
            cls = _EpochLoopDefault if mode == "default" else _EpochLoopLight
        return object.__new__(cls)

    def __init__(self, items, model, parent_task_id: str | None = None, workflow_id: str | None = None,
                 capture_enabled: bool = True):
        from flowcept.settings import get_settings

        self.model = model
        enabled = capture_enabled and get_settings().instrumentation.torch.epoch_loop is not None
        super().__init__(items, loop_name="epochs_loop", item_name="epoch", parent_task_id=parent_task_id,
                         workflow_id=workflow_id, capture_enabled=enabled)

    def _on_iteration(self, task_id: str) -> None:
        new_epoch = getattr(self.model, "new_epoch", None)
        if new_epoch is not None:
            new_epoch(task_id)

    def __iter__(self):
        st = getattr(self.model, "__dict__", {}).get("_flowcept")
        before = st.parent if st is not None else None
        try:
            yield from super().__iter__()
        finally:
            if st is not None:
                st.parent = before


class _EpochLoopLight(FlowceptEpochLoop, FlowceptLightweightLoop):
    pass


class _EpochLoopDefault(FlowceptEpochLoop, FlowceptLoop):
    pass


class FlowceptBatchLoop:
    """Loop over batches (``loop_name=f"{step}_batch"``, ``item_name="batch"``) inside a
    :class:`FlowceptEpochLoop`: each batch iteration's parent is the current epoch iteration, and the model's
    forwards point at the current batch.

    The records follow ``instrumentation.torch.batch_loop`` (``lightweight``, ``default``, or null: off). Without
    an epoch loop (or with its capture off) batches are not recorded.

    Args:
        items: the batches (e.g. a DataLoader).
        epochs_loop: the enclosing :class:`FlowceptEpochLoop`.
        step: label of the phase (``"train"``, ``"eval"``...).
        parent_task_id, workflow_id, items_length, capture_enabled: as in :class:`FlowceptLoop`.
    """

    def __new__(cls, *args: Any, **kwargs: Any):
        if cls is FlowceptBatchLoop:
            from flowcept.settings import get_settings

            mode = get_settings().instrumentation.torch.batch_loop
            cls = _BatchLoopDefault if mode == "default" else _BatchLoopLight
        return object.__new__(cls)

    def __init__(self, items, epochs_loop=None, parent_task_id: str | None = None, workflow_id: str | None = None,
                 step: str = "train", items_length: int = 0, capture_enabled: bool = True):
        from flowcept.settings import get_settings

        self.epochs_loop = epochs_loop
        self.model = getattr(epochs_loop, "model", None)
        enabled = bool(capture_enabled and epochs_loop is not None and epochs_loop.capture_enabled
                       and get_settings().instrumentation.torch.batch_loop is not None)
        super().__init__(items, loop_name=f"{step}_batch", item_name="batch", parent_task_id=parent_task_id,
                         workflow_id=workflow_id or getattr(epochs_loop, "workflow_id", None),
                         items_length=items_length, capture_enabled=enabled)

    def _on_iteration(self, task_id: str) -> None:
        new_batch = getattr(self.model, "new_batch", None)
        if new_batch is not None:
            new_batch(task_id)

    def __iter__(self):
        explicit = self.parent_task_id
        epoch_id = self.epochs_loop.get_current_iteration_id() if self.epochs_loop is not None else None
        if explicit is None:
            self.parent_task_id = epoch_id
        st = getattr(self.model, "__dict__", {}).get("_flowcept")
        try:
            yield from super().__iter__()
        finally:
            self.parent_task_id = explicit
            if st is not None:
                st.parent = epoch_id


class _BatchLoopLight(FlowceptBatchLoop, FlowceptLightweightLoop):
    pass


class _BatchLoopDefault(FlowceptBatchLoop, FlowceptLoop):
    pass
