"""Dask adapter: one task record per Dask task, captured on the workers and delivered by the client's pipeline.

::

    worker process                                          client process (Flowcept running)
    FlowceptDaskWorkerAdapter.transition(key, ...)          DaskAdapter
      executing -> bind the Task spec's args to names         start: client.register_plugin(plugin with the
      memory/error -> times, result, status, dependencies            workflow and campaign ids) -> every worker,
      -> a worker-local BatchBuffer (records made JSON-clean)        also those joining later, is linked
         into an in-memory sink  ◀── client.run(_drain) ──── every watch_interval_sec, and once at stop():
                                                                 emit(record) into the client's pipeline

Why records travel back to the client instead of each worker writing its own sinks: the client's pipeline is
the one the settings describe (JSONL file, embedded store, Redis + keeper), so one path serves every deployment,
and ``stop()`` is exact: the final ``client.run`` first unlinks each worker (nothing is captured after it), then
flushes that worker's buffer and returns every record of a task that finished before (a finished future means
its worker ran our ``transition`` hook already). Records of a worker that dies before a drain are lost with it.

``@flowcept_task`` functions called inside a Dask task join the same workflow: the worker's scope is the
fallback scope of its threads, and ``Worker.execute`` is wrapped per worker so the Dask key is the parent task id
in the executing thread's context.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

try:
    from dask._task_spec import Alias, DataNode, Dict, NestedContainer, Task, TaskRef
    from distributed import WorkerPlugin
except ImportError as exc:  # pragma: no cover - exercised without the extra
    from flowcept.errors import BackendUnavailableError

    raise BackendUnavailableError("the Dask adapter", "dask") from exc

from flowcept import context as _ctx
from flowcept.adapters._base import PollingAdapter
from flowcept.buffer import BatchBuffer
from flowcept.capture._binding import make_binder, make_output_mapper
from flowcept.capture.emit import emit
from flowcept._runtime import hostname
from flowcept.capture._builder import name_of
from flowcept.errors import ConfigError
from flowcept.serialize import snapshot

logger = logging.getLogger("flowcept")

PLUGIN_NAME = "flowcept"
_DRAIN_TIMEOUT = 30.0
_TERMINAL = {"memory": "FINISHED", "error": "ERROR"}
_RUNNING_STATES = frozenset({"executing", "long-running"})
_to_generated = make_output_mapper(None, None)


def task_id_of(key: Any) -> str:
    """The ``task_id`` of a Dask key (string keys as they are, tuple keys as their ``str``)."""
    return key if type(key) is str else str(key)


class _MemorySink:
    """Keeps the worker's encoded batches until the client drains them (bounded: a client that vanished without
    stop() leaves the plugin registered, and the worker must not grow without end)."""

    name = "dask-worker-memory"
    primary = True  # records it cannot keep count as dropped
    max_records = 500_000

    def __init__(self):
        self._docs: list[dict] = []
        self._lock = threading.Lock()

    def write(self, batch) -> int:
        docs = batch.docs
        with self._lock:
            room = max(0, self.max_records - len(self._docs))
            self._docs.extend(docs[:room])
        return max(0, len(docs) - room)

    def take(self) -> list[dict]:
        with self._lock:
            docs, self._docs = self._docs, []
        return docs

    def flush(self, timeout: float | None = None) -> bool:
        return True

    def close(self) -> None:
        pass


class FlowceptDaskWorkerAdapter(WorkerPlugin):
    """Worker plugin that records every Dask task executed on the worker as a task record.

    Register it yourself (``client.register_plugin(FlowceptDaskWorkerAdapter())``) or let
    ``Flowcept(interceptors=["dask"], dask_client=client)`` do it; either way the running Flowcept links it to
    its workflow and campaign, and collects its records.

    Args:
        workflow_id, campaign_id: the workflow to link to (set by the ``dask`` interceptor).
        cfg: the ``dask`` adapter settings (``worker_should_get_input``, ``worker_should_get_output``,
            ``worker_create_timestamps``).
        settings: the client's settings (buffer sizes).
    """

    name = PLUGIN_NAME
    idempotent = False

    def __init__(self, workflow_id: str | None = None, campaign_id: str | None = None, cfg: dict | None = None,
                 settings: Any = None, adapter_id: str = "dask"):
        self.adapter_id = adapter_id
        self.workflow_id = workflow_id
        self.campaign_id = campaign_id
        self.cfg = dict(cfg or {})
        self.settings = settings

    # ---- worker lifecycle ---------------------------------------------------------------------------------
    def setup(self, worker) -> None:
        """Called on each worker when the plugin arrives (also on workers that join later)."""
        self.worker = worker
        self.running: dict = {}  # key -> the record of a task being executed (get_flowcept_task)
        self.get_input = self.cfg.get("worker_should_get_input", True)
        self.get_output = self.cfg.get("worker_should_get_output", True)
        self.own_clock = self.cfg.get("worker_create_timestamps", False)
        self._binders: dict = {}
        self._sink = _MemorySink()
        self._buffer: BatchBuffer | None = None
        self.scope: _ctx.Scope | None = None
        worker.flowcept_tasks = self.running  # the reference's attribute name
        self._wrap_execute(worker)
        if self.workflow_id is not None:
            self._link()

    def teardown(self, worker) -> None:
        """Called when the plugin is removed or the worker closes: stop capturing and release the buffer."""
        self._unlink()
        if worker.__dict__.get("execute") is getattr(self, "_execute", None):
            del worker.execute
        if self._buffer is not None:
            self._buffer.close(_DRAIN_TIMEOUT)

    def _link(self) -> None:
        from flowcept.settings import get_settings

        settings = self.settings if self.settings is not None else get_settings()
        b = settings.buffer
        self._buffer = BatchBuffer([self._sink], batch_size=b.batch_size, flush_interval_secs=b.flush_interval_secs,
                                   max_size=b.max_size, full_wait_secs=b.full_wait_secs)
        self.scope = _ctx.Scope(self.workflow_id, self.campaign_id, self._buffer, settings)
        _ctx.enter_scope(self.scope)

    def _unlink(self) -> None:
        scope, self.scope = self.scope, None
        if scope is not None:
            _ctx.exit_scope(scope)

    def _wrap_execute(self, worker) -> None:
        execute = getattr(worker, "execute", None)
        if execute is None:
            return

        async def execute_with_parent(key, *args, **kwargs):
            # Runs in the asyncio task of this one execution: the executor thread inherits this context.
            token = _ctx.set_parent_task_id(task_id_of(key))
            try:
                return await execute(key, *args, **kwargs)
            finally:
                _ctx.reset_parent_task_id(token)

        self._execute = execute_with_parent
        worker.execute = execute_with_parent

    # ---- capture (worker event loop, inside the state machine: must be quick and never raise) -----------------
    def transition(self, key, start: str, finish: str, **kwargs) -> None:
        """Dask calls this for every state change of every task on this worker."""
        if self.scope is None:
            return
        if finish == "executing":
            try:
                self.running[key] = self._begin(key)
            except Exception as exc:  # noqa: BLE001
                self._failed("task start", exc)
        elif start in _RUNNING_STATES and finish in _TERMINAL:
            try:
                self._end(key, finish)
            except Exception as exc:  # noqa: BLE001
                self._failed("task end", exc)

    def _begin(self, key) -> dict:
        ts = self.worker.state.tasks[key]
        spec = ts.run_spec
        func = getattr(spec, "func", None)
        record = {"type": "task", "task_id": task_id_of(key), "workflow_id": self.workflow_id,
                  "campaign_id": self.campaign_id, "activity_id": name_of(func) if func is not None else None,
                  "hostname": hostname(), "address": self.worker.address, "adapter_id": self.adapter_id,
                  "status": "RUNNING"}
        if ts.dependencies:
            record["dependencies"] = [task_id_of(dep.key) for dep in ts.dependencies]
        if self.get_input and isinstance(spec, Task) and func is not None:
            record["used"] = snapshot(self._bind(func, spec))
        if self.own_clock:
            record["started_at"] = time.time()
        return record

    def _bind(self, func, spec) -> dict:
        binder = self._binders.get(func)
        if binder is None:
            if len(self._binders) > 1000:
                self._binders.clear()
            binder = self._binders[func] = make_binder(func)
        args = tuple(self._value(a) for a in spec.args)
        kwargs = {k: self._value(v) for k, v in spec.kwargs.items()} if spec.kwargs else {}
        return binder(args, kwargs)

    def _value(self, node):
        """The value an argument of a Task spec has when the task runs (without running anything)."""
        if isinstance(node, TaskRef):
            return self._data(node.key)
        if isinstance(node, Alias):
            return self._data(node.target)
        if isinstance(node, DataNode):
            return node.value
        if isinstance(node, Dict):
            args = node.args
            return {self._value(k): self._value(v) for k, v in zip(args[::2], args[1::2])}
        if isinstance(node, NestedContainer):
            return [self._value(a) for a in node.args]
        if isinstance(node, Task):
            return f"<dask task {task_id_of(node.key)}>"  # an inlined sub-task: never run twice
        return node

    def _data(self, key):
        data = self.worker.data
        fast = getattr(data, "fast", data)  # values spilled to disk are not read back for provenance
        try:
            return fast[key]
        except (KeyError, TypeError):
            return f"<dask key {task_id_of(key)}>"

    def _end(self, key, finish: str) -> None:
        record = self.running.pop(key, None)
        if record is None:
            record = self._begin(key)
        ts = self.worker.state.tasks.get(key)
        record["status"] = _TERMINAL[finish]
        if self.own_clock:
            record["ended_at"] = time.time()
        elif ts is not None:
            for ss in reversed(ts.startstops):
                if ss.get("action") == "compute":
                    record["started_at"], record["ended_at"] = ss["start"], ss["stop"]
                    break
        if finish == "error":
            if ts is not None:
                record["stderr"] = {"exception": ts.exception_text, "traceback": ts.traceback_text}
        elif self.get_output:
            value = self._data(key)
            if value is not None:
                record["generated"] = snapshot(_to_generated(value))
        self._buffer.append(record)

    def _failed(self, what: str, exc: BaseException) -> None:
        from flowcept._internal_errors import report_internal_error

        report_internal_error(f"dask worker plugin: {what}", exc)

    # ---- client side calls (through client.run) -----------------------------------------------------------
    def drain(self, final: bool) -> list[dict]:
        """Every record captured so far (``final``: stop capturing first)."""
        if final:
            self._unlink()
        if self._buffer is None:
            return []
        self._buffer.flush(_DRAIN_TIMEOUT)
        return self._sink.take()


def _drain_worker(dask_worker, final: bool = False) -> list[dict]:
    """``client.run`` target: the records the worker's plugin holds."""
    plugin = dask_worker.plugins.get(PLUGIN_NAME)
    return plugin.drain(final) if isinstance(plugin, FlowceptDaskWorkerAdapter) else []


def get_flowcept_task() -> dict | None:
    """The record of the Dask task running in the calling thread (inside a Dask task), or None."""
    from distributed import get_worker
    from distributed.worker import thread_state

    try:
        worker = get_worker()
    except ValueError:
        return None
    plugin = worker.plugins.get(PLUGIN_NAME)
    key = getattr(thread_state, "key", None)
    if not isinstance(plugin, FlowceptDaskWorkerAdapter) or key is None:
        return None
    return plugin.running.get(key)


class DaskAdapter(PollingAdapter):
    """The ``dask`` interceptor: links the client's workers to the workflow and collects their task records
    every ``watch_interval_sec`` and at ``stop()``.

    Args:
        key: settings key. cfg: the ``dask`` adapter settings.
        dask_client: the ``distributed.Client`` whose cluster runs the tasks.

    Raises:
        ConfigError: no ``dask_client``, or not a ``distributed.Client``.
    """

    kind = "dask"

    def __init__(self, key: str, cfg: dict, dask_client: Any = None):
        super().__init__(key, cfg)
        if dask_client is None:
            raise ConfigError("the 'dask' interceptor needs the client: "
                              "Flowcept(interceptors=['instrumentation', 'dask'], dask_client=client)",
                              key="dask_client")
        if not hasattr(dask_client, "register_plugin") or not hasattr(dask_client, "run"):
            raise ConfigError(f"expected a distributed.Client, got {type(dask_client).__name__}", key="dask_client")
        self.client = dask_client

    def start(self, scope: _ctx.Scope) -> None:
        plugin = FlowceptDaskWorkerAdapter(scope.workflow_id, scope.campaign_id, self.cfg, scope.settings, self.key)
        self.client.register_plugin(plugin, name=PLUGIN_NAME)
        super().start(scope)
        try:
            info = self.client.scheduler_info()
            self.emit({"type": "workflow", "workflow_id": scope.workflow_id,
                       "custom_metadata": {"n_workers": len(info.get("workers", {})),
                                           "scheduler": info.get("address")}})
        except Exception as exc:  # noqa: BLE001
            self.failed("scheduler info", exc)

    def poll(self, final: bool) -> None:
        # A closed client or a lost worker raises here: PollingAdapter counts it, the program goes on.
        per_worker = self.client.run(_drain_worker, final=final)
        for records in per_worker.values():
            for record in records:  # adapter_id is set on the workers (decorated calls there have none)
                if emit(record, self.scope):
                    self.captured += 1

    def stop(self) -> None:
        super().stop()
        try:
            self.client.unregister_worker_plugin(PLUGIN_NAME)
        except Exception as exc:  # noqa: BLE001
            self.failed("removing the worker plugin", exc)
