"""``FlowceptTask``: a task built by hand, for code that does not fit a decorator."""

from __future__ import annotations

import logging
import time
from typing import Any

from flowcept import context as _ctx
from flowcept._internal_errors import report_internal_error
from flowcept._runtime import RUNTIME, hostname as _hostname
from flowcept.capture._builder import end_telemetry, error_text, start_telemetry, static_fields, telemetry_sampler
from flowcept.ids import new_id
from flowcept.records import TaskObject
from flowcept.redact import OPTIONS_KEY as REDACT_OPTIONS_KEY, options_for
from flowcept.serialize import snapshot

logger = logging.getLogger("flowcept")
_clock = time.time
_parent_get = _ctx._parent_task.get
_scope_get = _ctx._scope.get


class FlowceptTask:
    """A provenance task you open and close yourself.

    Use it as a context manager (``with FlowceptTask(...) as t: ... t.end(generated=...)``), or call
    :meth:`end` (finalize with outputs and status, then publish) or :meth:`send` (publish as is, with
    ``ended_at = started_at``). Giving any end-like field (``generated``, ``ended_at``, ``stdout``, ``stderr``,
    ``status``) to the constructor ends the task at once. A task publishes at most once.

    Needs a running Flowcept; without one the task is inert (nothing is recorded, a warning says so once).

    Args:
        activity_id: what the task does.
        used: inputs. generated: outputs. data: a raw payload stored with the task (never in the JSONL file).
        task_id, workflow_id, campaign_id: default to a new id and the current workflow and campaign.
        parent_task_id: defaults to the enclosing task, if any.
        agent_id, source_agent_id: agent ids (UUID objects are stored as strings).
        tags, custom_metadata, subtype, hostname, adapter_id, started_at, ended_at, stdout, stderr, status.
        capture_telemetry: True/False to force telemetry snapshots on or off for this task.
        redact, redact_allow: as for :func:`flowcept.flowcept_task` (False stores the values as they are).
    """

    __slots__ = ("_record", "_scope", "_ended", "_token", "_sampler")

    def __init__(self, task_id: str | None = None, workflow_id: str | None = None, campaign_id: str | None = None,
                 activity_id: str | None = None, agent_id: Any = None, source_agent_id: Any = None,
                 parent_task_id: str | None = None, used: dict | None = None, data: Any = None,
                 subtype: str | None = None, hostname: str | None = None, tags: Any = None,
                 adapter_id: str | None = None, custom_metadata: dict | None = None, generated: dict | None = None,
                 started_at: float | None = None, ended_at: float | None = None, stdout: Any = None,
                 stderr: Any = None, status: Any = None, capture_telemetry: bool | None = None,
                 redact: Any = None, redact_allow: Any = None):
        self._token = None
        scope = _scope_get()
        if scope is None or not scope.active:
            scope = _ctx.current_scope()
        self._scope = scope
        self._sampler = None
        if scope is None:
            self._ended = True
            self._record = {"task_id": task_id, "activity_id": activity_id, "used": used}
            if "FlowceptTask inert" not in RUNTIME.warned:
                RUNTIME.warned.add("FlowceptTask inert")
                logger.warning("FlowceptTask(%r) created while no Flowcept is running: it records nothing. "
                               "Start one with `with Flowcept(...):` or Flowcept(...).start().", activity_id)
            return
        self._ended = False
        if activity_id and hostname is None and subtype is None and agent_id is None \
                and source_agent_id is None and tags is None and custom_metadata is None:
            record = {"activity_id": activity_id, "hostname": RUNTIME.host or _hostname()}  # the usual task
        else:
            record = static_fields(None, activity_id, tags, custom_metadata, subtype, agent_id, source_agent_id,
                                   hostname)
        record["type"] = "task"
        record["task_id"] = task_id or new_id()
        record["workflow_id"] = workflow_id or scope.workflow_id
        record["campaign_id"] = campaign_id or scope.campaign_id
        record["started_at"] = started_at if started_at is not None else _clock()
        parent = parent_task_id or _parent_get()
        if parent is not None:
            record["parent_task_id"] = parent
        if used is not None:
            record["used"] = snapshot(used)
        if data is not None:
            record["data"] = data
        if adapter_id is not None:
            record["adapter_id"] = adapter_id
        if (redact is not None and redact is not True) or redact_allow:  # else the settings decide alone
            redact_options = options_for(redact, redact_allow)
            if redact_options is not None:
                record[REDACT_OPTIONS_KEY] = redact_options  # applied on the flusher thread
        self._record = record
        if capture_telemetry or (capture_telemetry is None and scope.telemetry is not None):
            self._sampler = telemetry_sampler(scope, capture_telemetry)
            start_telemetry(record, self._sampler)
        if generated is not None or ended_at is not None or stdout is not None or stderr is not None \
                or status is not None:
            self.end(generated=generated, ended_at=ended_at, stdout=stdout, stderr=stderr, status=status)

    # ---- public API ---------------------------------------------------------------------------------------
    def end(self, generated: dict | None = None, ended_at: float | None = None, stdout: Any = None,
            stderr: Any = None, data: Any = None, custom_metadata: dict | None = None, status: Any = None) -> None:
        """Finalize the task (outputs, end time, status, end telemetry) and publish it. Later calls do nothing.

        ``status`` defaults to ERROR when ``stderr`` is given, else FINISHED.
        """
        if self._ended:
            return
        self._ended = True
        record = self._record
        record["ended_at"] = ended_at if ended_at is not None else _clock()
        if generated is not None:
            record["generated"] = snapshot(generated)
        if stdout is not None:
            record["stdout"] = stdout
        if stderr is not None:
            record["stderr"] = stderr
        if data is not None:
            record["data"] = data
        if custom_metadata:
            record["custom_metadata"] = {**record.get("custom_metadata", {}), **custom_metadata}
        if status is None:
            record["status"] = "ERROR" if stderr is not None else "FINISHED"
        else:
            record["status"] = getattr(status, "value", status)
        if self._sampler is not None:
            end_telemetry(record, self._sampler)
        scope = self._scope
        if scope.active:
            scope.buffer.emit(record)
        else:
            _not_recorded(record)

    def send(self) -> None:
        """Publish the task as it is now (``status: FINISHED``, ``ended_at = started_at``), unless already ended."""
        if self._ended:
            return
        self._ended = True
        record = self._record
        record.setdefault("status", "FINISHED")
        record["ended_at"] = record["started_at"]
        scope = self._scope
        if scope.active:
            scope.buffer.emit(record)
        else:
            _not_recorded(record)

    def get_id(self) -> str | None:
        return self._record.get("task_id")

    def get_workflow_id(self) -> str | None:
        return self._record.get("workflow_id")

    def get_campaign_id(self) -> str | None:
        return self._record.get("campaign_id")

    def get_agent_id(self) -> str | None:
        return self._record.get("agent_id")

    @property
    def _task(self) -> TaskObject:
        """The underlying record as a :class:`TaskObject` (writes go to the record that will be published)."""
        return TaskObject.wrap(self._record)

    def __enter__(self) -> "FlowceptTask":
        if not self._ended:
            self._token = _ctx._parent_task.set(self._record["task_id"])
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self._token is not None:
            _ctx.reset_parent_task_id(self._token)
            self._token = None
        if not self._ended:
            if exc is not None:
                self.end(stderr=error_text(exc), status="ERROR")
            else:
                self.end()

    def __repr__(self) -> str:
        return f"FlowceptTask(task_id={self.get_id()!r}, activity_id={self._record.get('activity_id')!r})"


def _not_recorded(record: dict) -> None:
    report_internal_error("FlowceptTask ended after its Flowcept stopped", RuntimeError(
        f"task {record.get('task_id')} ({record.get('activity_id')}) was not recorded: end it before the Flowcept "
        "block ends"))
