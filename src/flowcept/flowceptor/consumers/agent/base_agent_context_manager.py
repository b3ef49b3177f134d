"""``BaseAgentContextManager``: the agent's identity, its Flowcept workflow, and the ``lifespan`` of its MCP server.

```
MCP server start ──lifespan(app)──▶ start_consumer(): Flowcept(workflow_name="flowcept_agent_workflow").start()
                                     + one agent record {type: agent, agent_id, name}
tool call ──@agent_flowcept_task──▶ task record ──▶ scope.buffer (stored)  and  message_handler(task) ─▶ context.tasks
MCP server stop ───────────────────▶ stop_consumer(): Flowcept.stop() (flushes everything)
```
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from typing import Any, AsyncIterator

from flowcept.capture.agent import bind_agent_tools, register_agent, unregister_agent
from flowcept.ids import new_uuid

logger = logging.getLogger("flowcept")

AGENT_WORKFLOW_NAME = "flowcept_agent_workflow"


class BaseAppContext:
    """What ``lifespan`` yields to the server (``ctx.request_context.lifespan_context``).

    Attributes:
        tasks: the records of the tool calls captured so far, oldest first (``history`` is the same list).
        objects: object records handed to ``message_handler``.
    """

    def __init__(self, tasks: list | None = None, objects: list | None = None):
        self.tasks: list = tasks if tasks is not None else []
        self.objects: list = objects if objects is not None else []
        self.workflow_msg_obj: dict | None = None

    @property
    def history(self) -> list:
        return self.tasks

    def __repr__(self) -> str:
        return f"{type(self).__name__}(tasks={len(self.tasks)}, objects={len(self.objects)})"


class BaseAgentContextManager:
    """Runs an agent's provenance capture for the life of its MCP server. Subclass it to add state or handling.

    Not a :class:`~flowcept.flowceptor.consumers.base_consumer.BaseConsumer` (the reference derives it from one):
    it reads no queue, the tool records reach :meth:`message_handler` straight from capture. ``start_consumer`` and
    ``stop_consumer`` keep their reference names.

    Pass ``lifespan`` to the server (``FastMCP(..., lifespan=mgr.lifespan)`` with mcp 1.x,
    ``MCPServer(..., lifespan=mgr.lifespan)`` with mcp 2.x). Tool calls decorated with
    :func:`~flowcept.instrumentation.flowcept_agent_task.agent_flowcept_task` are then captured under this
    agent's id, in one workflow named ``flowcept_agent_workflow``, and appended to ``context.tasks``.
    Entering ``lifespan`` several times at once (one per session, as streamable HTTP does in mcp 1.x) shares one
    running capture; it stops when the last one exits.

    Args:
        agent_name: stored on the agent record; default: the class name.
        allow_mq_disabled: accepted for compatibility (records always go through the local pipeline).
        start_persistence, save_workflow, campaign_id: passed to the :class:`flowcept.Flowcept` it starts.

    Attributes:
        agent_id: uuid4 string, fixed at construction (also readable on the class once started).
        context: a :class:`BaseAppContext`.
    """

    agent_id: str | None = None

    def __init__(self, agent_name: str | None = None, allow_mq_disabled: bool = False, start_persistence: bool = True,
                 save_workflow: bool = True, campaign_id: str | None = None):
        self.agent_id = new_uuid()
        self.agent_name = agent_name or type(self).__name__
        self.allow_mq_disabled = allow_mq_disabled
        self.start_persistence = start_persistence
        self.save_workflow = save_workflow
        self.campaign_id = campaign_id
        self.context = BaseAppContext()
        self.flowcept = None
        self._users = 0
        self._lock = threading.Lock()
        self._token = None

    # ---- lifecycle (the reference's consumer names) ---------------------------------------------------------
    def start_consumer(self) -> "BaseAgentContextManager":
        """Start this agent's Flowcept and emit its agent record (idempotent); returns self."""
        with self._lock:
            if self.flowcept is not None and self.flowcept.is_started:
                return self
            from flowcept.controller import Flowcept

            fc = Flowcept(workflow_name=AGENT_WORKFLOW_NAME, start_persistence=self.start_persistence,
                          save_workflow=self.save_workflow, check_safe_stops=False, campaign_id=self.campaign_id,
                          agent_id=self.agent_id, agent_name=self.agent_name)
            fc.start()
            self.flowcept = fc
            type(self).agent_id = self.agent_id  # compatibility: the reference exposes it on the class
            if fc.is_started:
                fc._buffer.append(self._agent_record(fc))
            self._token = register_agent(self)
        return self

    def stop_consumer(self) -> None:
        """Stop this agent's Flowcept, flushing every captured record (idempotent)."""
        with self._lock:
            unregister_agent(self, self._token)
            self._token = None
            fc, self.flowcept = self.flowcept, None
        if fc is not None and fc.is_started:
            fc.stop()

    def message_handler(self, msg: dict) -> bool:
        """Keep a captured record in the context: tasks in ``context.tasks``, objects in ``context.objects``."""
        kind = msg.get("type")
        if kind == "task" and msg.get("subtype") != "llm_query":
            self.context.tasks.append(msg)
        elif kind == "object":
            self.context.objects.append(msg)
        return True

    def reset_context(self) -> None:
        """Start a fresh, empty :class:`BaseAppContext`."""
        self.context = BaseAppContext()

    # ---- MCP server -----------------------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def lifespan(self, app: Any = None) -> AsyncIterator[BaseAppContext]:
        """Async context manager for an MCP server's ``lifespan=``: capture runs while it is open.

        Args:
            app: the server (``FastMCP`` or ``MCPServer``); tools wrapped *after* registration are bound here.

        Yields:
            ``self.context``.
        """
        with self._lock:
            self._users += 1
            first = self._users == 1
        try:
            if first or self.flowcept is None:
                self.start_consumer()
            if app is not None:
                bind_agent_tools(app)
            # Entering the scope again here makes it (and this agent) current for the server's request tasks.
            token = register_agent(self)
            try:
                yield self.context
            finally:
                unregister_agent(self, token)
        finally:
            with self._lock:
                self._users -= 1
                last = self._users == 0
            if last:
                self.stop_consumer()

    # ---- pieces -----------------------------------------------------------------------------------------------
    def _agent_record(self, fc: Any) -> dict:
        from flowcept._runtime import login_name

        record = {"type": "agent", "agent_id": self.agent_id, "name": self.agent_name,
                  "workflow_id": fc.workflow_id, "campaign_id": fc.campaign_id, "registered_at": time.time(),
                  "user": login_name(fc.settings)}
        return {k: v for k, v in record.items() if v is not None}
