"""Where a capture call finds its workflow, campaign, parent task and pipeline.

The current :class:`Scope` lives in a context variable, so threads, asyncio tasks and nested workflows each see
their own. Threads started without a copied context (plain ``threading.Thread``, thread pools) see no context
value; they fall back to the most recently started controller that is still running, which is what users of the
documented ``Flowcept.current_workflow_id`` expect.
"""

from __future__ import annotations

import copyreg
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from flowcept._child import join_parent_workflow
from flowcept._runtime import RUNTIME

if TYPE_CHECKING:
    from flowcept.buffer import BatchBuffer


class Scope:
    """One running workflow as capture code sees it.

    Attributes:
        workflow_id: id stamped on every record captured in this scope.
        campaign_id: campaign of that workflow.
        buffer: the process's record buffer (``append(dict)``, ``extend(list)``).
        settings: the resolved :class:`flowcept.settings.Settings`.
        active: False once the owning controller stopped; a stale scope copied into a context is then ignored.
    """

    __slots__ = ("workflow_id", "campaign_id", "buffer", "settings", "active", "owner", "telemetry")

    def __init__(self, workflow_id: str, campaign_id: str | None, buffer: "BatchBuffer", settings: Any,
                 owner: Any = None):
        self.workflow_id = workflow_id
        self.campaign_id = campaign_id
        self.buffer = buffer
        self.settings = settings
        self.active = True
        self.owner = owner
        self.telemetry = None  # a TelemetrySampler when telemetry capture is on

    def __repr__(self) -> str:
        return f"Scope(workflow_id={self.workflow_id!r}, campaign_id={self.campaign_id!r}, active={self.active})"


_scope: ContextVar[Scope | None] = ContextVar("flowcept_scope", default=None)
_parent_task: ContextVar[str | None] = ContextVar("flowcept_parent_task", default=None)
_suppressed: ContextVar[bool] = ContextVar("flowcept_suppressed", default=False)
_PICKLED_BY_NAME = ("_scope", "_parent_task", "_suppressed")


def _context_var(name: str) -> ContextVar:
    return globals()[name]


def _reduce_context_var(var: ContextVar):
    # Decorated functions defined in __main__ travel by value (cloudpickle: Dask process workers, Ray...) with
    # references to these variables: they pickle as references to the receiving process's same variables.
    for name in _PICKLED_BY_NAME:
        if globals()[name] is var:
            return _context_var, (name,)
    raise TypeError(f"cannot pickle {var!r}")


copyreg.pickle(ContextVar, _reduce_context_var)
# The stack of running scopes, newest last (the fallback for contexts that never entered one), is process state:
# RUNTIME.running_scopes.


def current_scope() -> Scope | None:
    """The scope capture should use now, or None when no controller is running."""
    scope = _scope.get()
    if scope is not None and scope.active:
        return scope
    if _suppressed.get():
        return None
    running = RUNTIME.running_scopes
    if not running:
        return join_parent_workflow()  # a process started by a running Flowcept joins its workflow
    return running[-1]


def suppress_capture() -> None:
    """Turn capture off in the current context (flowcept's own threads call this so their work is never captured)."""
    _suppressed.set(True)


def enter_scope(scope: Scope):
    """Make ``scope`` current in this context and register it as running; returns a token for :func:`exit_scope`."""
    RUNTIME.running_scopes.append(scope)
    RUNTIME.last_workflow_id = scope.workflow_id
    RUNTIME.last_campaign_id = scope.campaign_id
    return _scope.set(scope)


def exit_scope(scope: Scope, token=None) -> None:
    """Mark ``scope`` stopped and restore the previous scope of this context."""
    scope.active = False
    try:
        RUNTIME.running_scopes.remove(scope)
    except ValueError:
        pass
    if token is not None:
        try:
            _scope.reset(token)
        except ValueError:
            # Stopped from another context than the one that started it: nothing to restore here.
            pass


def last_workflow_id() -> str | None:
    """Workflow id of the current scope, else of the most recently started one (even if stopped)."""
    scope = current_scope()
    if scope is not None:
        return scope.workflow_id
    return RUNTIME.last_workflow_id


def last_campaign_id() -> str | None:
    """Campaign id of the current scope, else of the most recently started one (even if stopped)."""
    scope = current_scope()
    if scope is not None:
        return scope.campaign_id
    return RUNTIME.last_campaign_id


def get_parent_task_id() -> str | None:
    """Id of the task enclosing the current call, if any."""
    return _parent_task.get()


def set_parent_task_id(task_id: str | None):
    """Set the enclosing task id; returns a token for :func:`reset_parent_task_id`."""
    return _parent_task.set(task_id)


def reset_parent_task_id(token) -> None:
    """Restore the enclosing task id saved in ``token``."""
    try:
        _parent_task.reset(token)
    except ValueError:
        pass
