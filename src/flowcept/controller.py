"""``Flowcept``: starts and stops capture for one workflow (context manager or ``start()``/``stop()``)."""

from __future__ import annotations

import logging
import os
import threading
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

from flowcept import _child, _runtime
from flowcept import context as _ctx
from flowcept._runtime import host_identity, hostname, login_name
from flowcept.errors import ConfigError, StopTimeoutError
from flowcept.ids import new_uuid
from flowcept.query.objects_api import FlowceptObjects
from flowcept.transport import CONFIRMED, Confirmation

logger = logging.getLogger("flowcept")

KNOWN_INTERCEPTORS = ("instrumentation", "dask", "dask_worker", "mlflow", "tensorboard", "broker_mqtt")
# Adapter kinds and the keyword arguments each one takes (an `adapters.<key>` of the settings takes its kind's).
ADAPTER_KWARGS = {"dask": {"dask_client"}, "dask_worker": set(), "mlflow": set(), "tensorboard": set(),
                  "broker_mqtt": set()}


@dataclass
class StopReport:
    """What ``stop()`` observed: records delivered, dropped, and capture failures in this process."""

    workflow_id: str
    written: int = 0
    dropped: int = 0
    capture_errors: int = 0
    sink_failures: dict = field(default_factory=dict)
    buffer_file: str | None = None
    redacted: int = 0  # values stored as "REDACTED" (how many, never which)
    #: Adapter key -> failures inside that adapter (logged and counted, never raised to the user).
    adapter_errors: dict = field(default_factory=dict)
    #: Adapter key -> {"captured", "errors", "rejected"} counts.
    adapters: dict = field(default_factory=dict)
    #: Joined child processes still alive at stop (stop waited for each to flush and leave the workflow).
    children_running: int = 0
    #: Joined children whose records stop could not confirm (still running when the wait ended, or killed).
    late_children: int = 0


class _FlowceptMeta(type):
    """Class-level views kept for documented compatibility (``Flowcept.current_workflow_id``, ``Flowcept.db``)."""

    @property
    def current_workflow_id(cls) -> str | None:
        return _ctx.last_workflow_id()

    @property
    def campaign_id(cls) -> str | None:
        """Campaign of the current workflow, else of the most recently started one (readable after it stopped)."""
        return _ctx.last_campaign_id()

    @property
    def is_started(cls) -> bool:
        """Whether a Flowcept is running in this process (the class-level view; instances have their own)."""
        return _ctx.current_scope() is not None

    @property
    def buffer(cls) -> list | None:
        """This process's captured records of the running workflow (merged by id), or None when none runs."""
        instance = Flowcept.get_current_instance()
        return instance.get_buffer() if instance is not None else None

    @property
    def db(cls):
        from flowcept.query.api import DBAPI

        rt = _runtime.RUNTIME
        with rt.db_lock:
            if rt.db is None:
                rt.db = DBAPI()
            return rt.db


class Flowcept(FlowceptObjects, metaclass=_FlowceptMeta):
    """The runtime controller: captures everything run between :meth:`start` and :meth:`stop` as one workflow.

    Args:
        interceptors: what to capture: ``"instrumentation"`` (decorators, loops, tasks; the default) and adapter
            kinds (``"dask"``, ``"mlflow"``, ``"tensorboard"``).
        bundle_exec_id: groups this controller's producers for stops; defaults to ``id(self)``.
        campaign_id: campaign of the workflow; a new uuid4 by default.
        workflow_id: id of the workflow; a new uuid4 by default (pass one to join a workflow started elsewhere).
        workflow_name, workflow_subtype, workflow_description: stored on the workflow record.
        workflow_args: workflow-level inputs, stored as the workflow's ``used``.
        start_persistence: run the persistence consumer in this process (matters with a message queue).
        check_safe_stops: make ``stop()`` wait until every captured record is confirmed.
        save_workflow: emit the workflow record at start and stop.
        delete_buffer_file: delete the JSONL buffer file now (None: follow the settings).
        **kwargs: adapter arguments, e.g. ``dask_client``.

    Raises:
        TypeError: an unknown keyword argument.
        ConfigError: an unknown interceptor or invalid settings.
    """

    def __init__(self, interceptors: str | list[str] | None = None, bundle_exec_id: Any = None,
                 campaign_id: str | None = None, workflow_id: str | None = None, workflow_name: str | None = None,
                 workflow_subtype: str | None = None, workflow_args: dict | None = None,
                 start_persistence: bool = True, check_safe_stops: bool = True, save_workflow: bool = True,
                 delete_buffer_file: bool | None = None, workflow_description: str | None = None,
                 parent_workflow_id: str | None = None, agent_id: str | None = None, agent_name: str | None = None,
                 *args: Any, **kwargs: Any):
        from flowcept._logging import configure_logging
        from flowcept.settings import get_settings

        if "save_workflows" in kwargs:
            warnings.warn("Flowcept(save_workflows=...) is deprecated; use save_workflow=...", DeprecationWarning,
                          stacklevel=2)
            save_workflow = bool(kwargs.pop("save_workflows"))
        self.settings = get_settings()
        configure_logging(self.settings.log)
        if interceptors is None:
            interceptors = ["instrumentation"]
        elif isinstance(interceptors, str):
            interceptors = [interceptors]
        interceptors = list(interceptors)
        if not self.settings.instrumentation.enabled:
            # The master switch wins over arguments: decorators, loops and tasks stay pass-throughs.
            interceptors = [kind for kind in interceptors if kind != "instrumentation"]
        from flowcept.adapters import KIND_KWARGS, resolve_adapters

        specs = resolve_adapters(interceptors, self.settings.adapters)
        allowed = set().union(*(KIND_KWARGS.get(spec.kind, set()) for spec in specs))
        unknown = sorted(set(kwargs) - allowed)
        if unknown:
            owners = {arg: kind for kind, args in ADAPTER_KWARGS.items() for arg in args}
            hints = [f"{arg!r} belongs to the {owners[arg]!r} adapter: add it, e.g. "
                     f"interceptors=['instrumentation', '{owners[arg]}']" for arg in unknown if arg in owners]
            raise TypeError(f"Flowcept() got unexpected keyword argument(s) {', '.join(map(repr, unknown))}"
                            + (f"; {'; '.join(hints)}" if hints else "")
                            + (f"; adapter arguments accepted here: {', '.join(sorted(allowed))}" if allowed else ""))
        self.interceptors = interceptors
        self.adapter_args = args
        self.adapter_kwargs = kwargs
        self._adapters: list = self._make_adapters(specs, kwargs)
        self.workflow_id = workflow_id or new_uuid()
        # Joining a workflow started elsewhere (an explicit workflow_id): its campaign is the owner's to say, so
        # none is invented here (records then carry no campaign_id rather than a wrong one).
        self.campaign_id = campaign_id or (None if workflow_id else new_uuid())
        self.bundle_exec_id = bundle_exec_id if bundle_exec_id is not None else id(self)
        self.workflow_name = workflow_name
        self.workflow_subtype = workflow_subtype
        self.workflow_description = workflow_description
        self.workflow_args = workflow_args
        self.parent_workflow_id = parent_workflow_id
        # A name alone is enough to register an agent: its id is generated (readable as ``fc.agent_id``).
        self.agent_id = agent_id or (new_uuid() if agent_name else None)
        self.agent_name = agent_name
        self.start_persistence = start_persistence
        self.check_safe_stops = check_safe_stops
        self._save_workflow = save_workflow
        self.enabled = bool(interceptors)
        self.is_started = False
        # stop() from two threads at once: the second waits and finds the controller stopped (releasing the shared
        # pipeline twice would close it under another running workflow).
        self._stop_lock = threading.RLock()
        self.report: StopReport | None = None
        self._scope: _ctx.Scope | None = None
        self._token = None
        self._buffer = None
        self._started_at: float | None = None
        self._errors_at_start = 0
        self._keeper = None
        # Set by @flowcept when the user did not ask for save_workflow: the workflow record then goes to the store
        # only (at stop), so the JSONL file holds just the tasks (as in the reference) and the store still has it.
        self._workflow_in_store_only = False
        self._joining = None
        dump = self.settings.project.dump_buffer
        if delete_buffer_file or (delete_buffer_file is None and dump.delete_previous_file and dump.enabled):
            Flowcept.delete_buffer_file()

    # ---- identity -----------------------------------------------------------------------------------------
    @property
    def current_workflow_id(self) -> str:
        """This controller's workflow id (readable before ``start()``)."""
        return self.workflow_id

    # ---- lifecycle ----------------------------------------------------------------------------------------
    def start(self) -> "Flowcept":
        """Start capture: open the pipeline, emit the workflow record, start adapters. Returns self."""
        if self.is_started:
            logger.warning("Flowcept(workflow_id=%s) is already started", self.workflow_id)
            return self
        if not self.enabled:
            logger.warning("Flowcept is disabled (instrumentation.enabled is false and no interceptor was given); "
                           "nothing will be captured.")
            return self
        from flowcept._internal_errors import capture_error_count

        for adapter in self._adapters:
            adapter.check()  # bad adapter config fails here, before any pipeline opens
        telemetry = self._make_telemetry()
        if self.start_persistence and self.settings.mq.enabled:
            # The persistence consumer: with check_safe_stops=False it keeps the process alive until stopped or
            # signalled, as the spec's "persistence_starter.py" expects.
            self._keeper = _runtime.acquire_keeper(self.settings, keep_alive=not self.check_safe_stops)
        self._buffer = _runtime.acquire_buffer(self.settings, self.workflow_id)
        transport = _runtime.transport_of(self._buffer)
        if transport is not None:
            transport.begin_workflow(self.workflow_id)
        scope = _ctx.Scope(self.workflow_id, self.campaign_id, self._buffer, self.settings, owner=self)
        scope.telemetry = telemetry
        self._scope = scope
        self._token = _ctx.enter_scope(scope)
        self._joining = _child.open_joining(self)
        self._errors_at_start = capture_error_count()
        self._started_at = time.time()
        self.is_started = True
        if self._save_workflow:
            self._buffer.append(self._workflow_record(status="RUNNING"))
        if self.agent_id is not None:
            self.save_agent(name=self.agent_name, agent_id=self.agent_id)
        try:
            self._start_adapters()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, _error: BaseException | None = None) -> StopReport | None:
        """Stop capture: emit the workflow's end, flush everything this process captured, release the pipeline.

        Returns:
            A :class:`StopReport` with delivery counts (``dropped`` > 0 means records were lost; the log says why).

        Raises:
            StopTimeoutError: records were still unconfirmed after ``buffer.stop_timeout_secs``.
        """
        if self.is_started and self._scope in _runtime.RUNTIME.inherited_scopes:
            # A forked child leaving its parent's block (sys.exit in the child unwinds the `with`): the workflow is
            # the parent's to end. The child's records are its own (its buffer was emptied at the fork): flush them.
            self.is_started = False
            self._buffer.flush(self.settings.buffer.stop_timeout_secs)
            return self.report
        with self._stop_lock:
            return self._stop(_error)

    def _stop(self, _error: BaseException | None) -> StopReport | None:
        if not self.is_started:
            if self.enabled:
                logger.warning("Flowcept.stop() called on a controller that is not started")
            return self.report
        from flowcept._internal_errors import capture_error_count

        self._stop_adapters()
        buffer = self._buffer
        if self._save_workflow:
            end = {"type": "workflow", "workflow_id": self.workflow_id, "ended_at": time.time(),
                   "status": "ERROR" if _error is not None else "FINISHED"}
            buffer.append(end)
        _ctx.exit_scope(self._scope, self._token)
        self.is_started = False
        timeout = self.settings.buffer.stop_timeout_secs
        deadline = time.monotonic() + timeout
        children = _child.close_joining(self._joining, deadline)
        self._joining = None
        transport = _runtime.transport_of(buffer)
        keeper, self._keeper = self._keeper, None
        confirmation = CONFIRMED
        if transport is not None:
            # Flush, then confirm: in the broker, and with a keeper here and safe stops, stored by the keepers.
            transport.hurry(deadline - min(1.0, timeout * 0.1))
            if buffer.flush(timeout):
                confirmation = transport.confirm(self.workflow_id, deadline,
                                                 wait_stored=keeper is not None and self.check_safe_stops)
            else:  # the deadline passed with records still in the buffer (counted below, as buffer.pending)
                confirmation = Confirmation(False)
            transport.hurry(None)
        done = _runtime.release_buffer(buffer, max(0.0, deadline - time.monotonic()))
        if keeper is not None:
            _runtime.release_keeper(keeper, max(1.0, deadline - time.monotonic()))
        self.report = StopReport(workflow_id=self.workflow_id, written=buffer.written, dropped=buffer.dropped,
                                 capture_errors=capture_error_count() - self._errors_at_start,
                                 sink_failures=dict(buffer.sink_failures), redacted=buffer.redacted,
                                 buffer_file=getattr(buffer.sinks[0], "path", None) if buffer.sinks else None,
                                 adapter_errors={a.key: a.errors for a in self._adapters},
                                 adapters={a.key: a.counts() for a in self._adapters},
                                 children_running=children[0], late_children=children[1])
        if buffer.dropped:
            logger.warning("flowcept: %d record(s) could not be stored (see earlier messages)", buffer.dropped)
        # Spilled records are safe on disk: only safe stops insist that they reached the store.
        if not done or not confirmation.confirmed and (self.check_safe_stops or confirmation.spill_path is None):
            raise StopTimeoutError(buffer.pending + confirmation.unconfirmed, confirmation.spill_path, timeout)
        if self._workflow_in_store_only and not self._save_workflow:
            self._store_workflow_record(_error)
        return self.report

    def _store_workflow_record(self, error: BaseException | None) -> None:
        """Write this workflow's record straight to the store (not through the pipeline nor the JSONL file)."""
        from flowcept._internal_errors import report_internal_error

        if self.settings.project.db_flush_mode == "offline" or self.settings.databases.store_kind is None:
            return
        record = self._workflow_record(status="ERROR" if error is not None else "FINISHED")
        record["ended_at"] = time.time()
        try:
            Flowcept.db.insert_or_update_workflow(record)
        except Exception as exc:  # noqa: BLE001 - the user's run is over and fine; say what was not stored
            report_internal_error(f"storing the record of workflow {self.workflow_id}", exc)

    def __enter__(self) -> "Flowcept":
        return self.start()

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc is None:
            self.stop()
            return
        try:
            self.stop(_error=exc)
        except Exception as stop_exc:  # noqa: BLE001 - never mask the user's own exception
            logger.error("flowcept: stop() failed while an exception from the `with` block propagates: %s", stop_exc)

    # ---- pieces -------------------------------------------------------------------------------------------
    def _make_telemetry(self):
        cfg = self.settings.telemetry_capture
        if not cfg.enabled:
            return None
        from flowcept.capture.telemetry import make_sampler

        return make_sampler(cfg)

    def _workflow_record(self, status: str) -> dict:
        from flowcept import __version__

        record = {
            "type": "workflow", "workflow_id": self.workflow_id, "campaign_id": self.campaign_id,
            "name": self.workflow_name, "subtype": self.workflow_subtype,
            "workflow_description": self.workflow_description, "parent_workflow_id": self.parent_workflow_id,
            "used": self.workflow_args, "started_at": self._started_at, "status": status,
            "user": login_name(self.settings), "hostname": hostname(), "agent_id": self.agent_id,
            "interceptor_ids": [f"{kind}_{self.bundle_exec_id}" for kind in self.interceptors],
            "flowcept_version": __version__,
            "conf": {"settings_path": self.settings.path},
        }
        record.update(workflow_enrichment(self.settings))
        if self.settings.telemetry_capture.machine_info:
            try:
                from flowcept.capture.telemetry import machine_info

                record["machine_info"] = {f"{self.interceptors[0]}_{self.bundle_exec_id}":
                                          machine_info(self.settings.telemetry_capture)}
            except Exception as exc:  # noqa: BLE001
                logger.warning("flowcept: machine_info capture failed: %r", exc)
        return {k: v for k, v in record.items() if v is not None}

    @staticmethod
    def _make_adapters(specs: list, kwargs: dict) -> list:
        from flowcept.adapters import make_adapter

        return [make_adapter(spec, kwargs) for spec in specs]

    def _start_adapters(self) -> None:
        for adapter in self._adapters:
            adapter.start(self._scope)
            adapter.started = True

    def _stop_adapters(self) -> None:
        for adapter in reversed(self._adapters):
            if not getattr(adapter, "started", False):
                continue
            adapter.started = False
            try:
                adapter.stop()
            except Exception as exc:  # noqa: BLE001 - an adapter never breaks the user's program
                adapter.failed("stop", exc)

    # ---- buffer file and records --------------------------------------------------------------------------
    def get_buffer(self, return_df: bool = False):
        """The records captured so far for this workflow, merged by id (a list, or a DataFrame).

        Read back from the JSONL buffer file when it is enabled, else from the store.
        """
        if self._buffer is not None and self.is_started:
            self._buffer.flush(self.settings.buffer.stop_timeout_secs)
        path = _runtime.current_dump_path() or (self.report.buffer_file if self.report else None)
        if path and os.path.exists(path):
            records = [r for r in Flowcept.read_buffer_file(path) if r.get("workflow_id") == self.workflow_id]
        else:
            db = Flowcept.db
            records = db.workflow_query({"workflow_id": self.workflow_id}) + \
                db.task_query({"workflow_id": self.workflow_id})
        return _to_df(records, normalize=True) if return_df else records

    def dump_buffer(self, path: str | None = None) -> str:
        """Write this workflow's records to a JSONL file (default: the configured buffer path); returns the path."""
        from flowcept.transport.jsonl import buffer_file_path, write_messages

        records = self.get_buffer()
        target = path or buffer_file_path(self.settings.project.dump_buffer, self.workflow_id)
        if os.path.abspath(target) == os.path.abspath(_runtime.current_dump_path() or ""):
            return target  # the live buffer file already holds every message
        write_messages(target, records)
        return target

    @staticmethod
    def read_buffer_file(file_path: str | None = None, return_df: bool = False, normalize_df: bool = False,
                         consolidate: bool = False, workflow_id: str | None = None, cleanup_files: bool = True,
                         raw: bool = False):
        """Read a JSONL buffer file.

        Args:
            file_path: the file; default: ``project.dump_buffer.path`` from the settings.
            return_df: return a pandas DataFrame (``normalize_df``: nested fields as dotted columns).
            consolidate: first merge the per-process files of ``workflow_id`` into one.
            cleanup_files: with ``consolidate``, delete the merged pieces.
            raw: return every message as written, instead of one record per id (later messages merged in).

        Raises:
            FileNotFoundError: the file does not exist.
        """
        from flowcept.settings import get_settings
        from flowcept.transport.jsonl import consolidate_files, iter_messages, merge_messages

        path = file_path or get_settings().project.dump_buffer.path
        if consolidate:
            if not workflow_id:
                raise ValueError("read_buffer_file(consolidate=True) needs workflow_id=...")
            path = consolidate_files(path, workflow_id, cleanup=cleanup_files)
        if not os.path.exists(path):
            raise FileNotFoundError(f"no flowcept buffer file at {path}")
        messages = iter_messages(path)
        records = list(messages) if raw else merge_messages(messages)
        if return_df:
            return _to_df(records, normalize=normalize_df)
        return records

    read_messages_file = read_buffer_file

    @staticmethod
    def generate_report(report_type: str = "workflow_card", format: str = "markdown", print_markdown: bool = False,
                        output_path: str | None = None, input_jsonl_path: str | None = None, records: Any = None,
                        workflow_id: str | None = None, campaign_id: str | None = None) -> dict:
        """Write a workflow card (markdown) or a provenance report (PDF or HTML); see
        :func:`flowcept.report.generate_report` for the arguments and the returned stats."""
        from flowcept.report import generate_report

        return generate_report(report_type=report_type, format=format, output_path=output_path,
                               input_jsonl_path=input_jsonl_path, records=records, workflow_id=workflow_id,
                               campaign_id=campaign_id, print_markdown=print_markdown)

    @staticmethod
    def delete_buffer_file(path: str | None = None) -> None:
        """Delete the JSONL buffer file (default: the configured path) if it exists and no running Flowcept, in
        this process or another, is writing it."""
        from flowcept.settings import get_settings

        from flowcept.transport.jsonl import delete_if_unused

        target = path or get_settings().project.dump_buffer.path
        try:
            delete_if_unused(target)
        except OSError as exc:
            logger.warning("flowcept: could not delete the buffer file %s: %s", target, exc)

    @staticmethod
    def get_current_instance() -> "Flowcept | None":
        """The controller of the current scope, if one is running."""
        scope = _ctx.current_scope()
        return scope.owner if scope is not None else None

    # ---- reference-compatible services and records ------------------------------------------------------
    def save_workflow(self, interceptor_kind: str | None = None, interceptor_instance: Any = None) -> str:
        """Emit this workflow's record now (also when the controller was made with ``save_workflow=False``).

        The arguments are the reference's and only name the interceptor in ``interceptor_ids``. Returns the id.

        Raises:
            RuntimeError: the controller is not started.
        """
        if not self.is_started:
            raise RuntimeError("save_workflow() needs a started Flowcept: call start() or use `with Flowcept():`")
        record = self._workflow_record(status="RUNNING")
        if interceptor_kind is not None:
            record["interceptor_ids"] = [f"{interceptor_kind}_{self.bundle_exec_id}"]
        self._buffer.emit(record)
        return self.workflow_id

    def save_agent(self, name: str | None = None, agent_id: str | None = None, workflow_id: str | None = None,
                   campaign_id: str | None = None) -> str:
        """Emit an agent record (``type: "agent"``) linked to this workflow; returns its ``agent_id`` (a new
        uuid4 when not given).

        Raises:
            RuntimeError: the controller is not started.
        """
        from flowcept.records import AgentObject

        if not self.is_started:
            raise RuntimeError("save_agent() needs a started Flowcept: call start() or use `with Flowcept():`")
        agent = AgentObject(agent_id=agent_id or new_uuid(), name=name, workflow_id=workflow_id or self.workflow_id,
                            campaign_id=campaign_id or self.campaign_id, registered_at=time.time())
        agent.enrich()
        self._buffer.emit(agent.to_dict())
        return agent.agent_id

    @staticmethod
    def services_status() -> dict[str, str]:
        """``{"store": "ok"|"unavailable", "mq": ...}`` for the services the settings enable (``mq`` only when
        ``mq.enabled``; no ``store`` in offline mode)."""
        from flowcept.services import services_status
        from flowcept.settings import get_settings

        return services_status(get_settings())

    @staticmethod
    def services_alive() -> bool:
        """Whether every service the settings enable answers."""
        return all(state == "ok" for state in Flowcept.services_status().values())

    @staticmethod
    def start_consumption_services(bundle_exec_id: Any = None, check_safe_stops: bool = False,
                                   consumers: Any = None) -> None:
        """Run a keeper in the foreground (blocking) until SIGTERM/SIGINT: it stores what the message queue holds.

        ``bundle_exec_id`` and ``check_safe_stops`` are the reference's; our keeper serves every producer and
        stops exactly, so they are accepted and unused.

        Raises:
            NotImplementedError: ``consumers`` other than None (custom consumers: subclass ``BaseConsumer``).
            ConfigError: the message queue is not enabled (there is nothing to consume).
        """
        if consumers is not None:
            raise NotImplementedError("start_consumption_services(consumers=...) is not supported; subclass "
                                      "flowcept.flowceptor.consumers.base_consumer.BaseConsumer instead")
        from flowcept.keeper import run_keeper

        run_keeper()

    def __repr__(self) -> str:
        return (f"Flowcept(workflow_id={self.workflow_id!r}, workflow_name={self.workflow_name!r}, "
                f"started={self.is_started})")


def workflow_enrichment(settings) -> dict:
    """Workflow fields from ``sys_metadata`` and ``extra_metadata``, and with ``project.enrich_messages`` the host
    facts and the active settings (secrets redacted)."""
    sysm = settings.sys_metadata
    out = {"environment_id": sysm.environment_id, "extra_metadata": dict(settings.extra_metadata) or None}
    if settings.project.enrich_messages:
        out.update(sys_name=sysm.sys_name or os.uname().sysname, flowcept_settings=settings.to_dict(redact=True))
        out["extra_metadata"] = {**(out["extra_metadata"] or {}), **host_identity(settings)}
    return out


def _to_df(records: list, normalize: bool):
    import pandas as pd

    if normalize:
        return pd.json_normalize(records, sep=".")
    return pd.DataFrame(records)
