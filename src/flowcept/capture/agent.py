"""Agent capture: MCP tool calls as ``agent_tool`` tasks, model calls inside them as ``ai_model_invocation`` tasks.

```
MCP client ── call_tool ──▶ @agent_flowcept_task wrapper ──▶ task_wrapper (the @flowcept_task engine)
                               │ stamps agent_id, feeds the agent's history     │ used / generated / timing / status
                               ▼                                                ▼
                     FlowceptLLM(model)(prompt)  ── child task (parent = the tool's task) ──▶ scope.buffer
```

Neither the ``mcp`` package nor LangChain is imported here: a tool is any function, a model is any callable (or
an object with ``invoke``), so the same code serves ``FastMCP`` (mcp 1.x) and ``MCPServer`` (mcp 2.x).
"""

from __future__ import annotations

import functools
import inspect
import math
from contextvars import ContextVar
from typing import Any, Callable

from flowcept import context as _ctx
from flowcept._internal_errors import report_internal_error
from flowcept.capture._builder import check_options, error_text, name_of, task_wrapper
from flowcept.redact import redacted_copy

__all__ = ["FlowceptLLM", "agent_flowcept_task", "bind_agent_tools", "get_current_context_task"]

AGENT_TOOL_SUBTYPE = "agent_tool"
MODEL_INVOCATION_SUBTYPE = "ai_model_invocation"

_parent_var = _ctx._parent_task

# The agent whose server is handling the current request (set by BaseAgentContextManager.lifespan), and, for
# contexts that never saw a lifespan (threads without a copied context), the agents running in this process.
_agent_var: ContextVar[Any] = ContextVar("flowcept_agent", default=None)
_running_agents: list = []
# The agent tool call running now: (activity_id, agent_id), for get_current_context_task() and model calls.
_call_var: ContextVar[tuple | None] = ContextVar("flowcept_agent_tool_call", default=None)
# Undecorated tool function -> its capture wrapper, so a tool registered *before* being wrapped (decorators in
# the other order) can be re-pointed at the wrapper when its server starts (see bind_agent_tools).
_wrappers: dict = {}


def register_agent(agent: Any):
    """Make ``agent`` (anything with ``agent_id`` and ``message_handler(record)``) current; returns a token."""
    _running_agents.append(agent)
    return _agent_var.set(agent)


def unregister_agent(agent: Any, token=None) -> None:
    """Undo :func:`register_agent`."""
    try:
        _running_agents.remove(agent)
    except ValueError:
        pass
    if token is not None:
        try:
            _agent_var.reset(token)
        except ValueError:
            pass  # left from another context than the one that entered: nothing to restore here


def current_agent() -> Any:
    """The agent serving the current call, else the most recently started one still running, else None."""
    agent = _agent_var.get()
    if agent is not None and agent in _running_agents:
        return agent
    return _running_agents[-1] if _running_agents else None


def _current_agent_id() -> str | None:
    call = _call_var.get()
    if call is not None:
        return call[1]
    agent = current_agent()
    return str(agent.agent_id) if agent is not None and agent.agent_id is not None else None


def _is_mcp_context(value: Any) -> bool:
    cls = type(value)
    return cls.__name__ == "Context" and cls.__module__.startswith("mcp.")


def _on_tool_record(record: dict) -> None:
    used = record.get("used")
    if used:
        # MCP injects its request Context into tools that ask for it: a handle, not an input.
        for key in [k for k, v in used.items() if _is_mcp_context(v)]:
            del used[key]
    agent = current_agent()
    if agent is not None:
        agent.message_handler(redacted_copy(record))


_AGENT_OPTIONS = frozenset({
    "args_handler", "tags", "custom_metadata", "subtype", "agent_id", "capture_telemetry", "activity_id",
    "output_names", "workflow_id", "campaign_id", "redact", "redact_allow",
})


def agent_flowcept_task(func: Callable | None = None, **options: Any):
    """Capture each call of an agent tool as a task (``subtype: "agent_tool"``).

    Works above or below ``@mcp.tool()``, on sync and async tools, with ``FastMCP`` (mcp 1.x) and ``MCPServer``
    (mcp 2.x). The task carries the agent id of the running :class:`BaseAgentContextManager`, ``activity_id`` =
    the function name, ``used`` = the bound arguments (MCP's injected ``Context`` left out), ``generated`` = a
    returned dict as is or ``{"result": value}``, timing and status. An exception is recorded (``status:
    ERROR``, message in ``stderr``) and re-raised unchanged, so MCP reports it to the client as usual. Each
    captured task is also handed to the agent's ``message_handler`` (by default appended to
    ``context.tasks``).

    Usable bare (``@agent_flowcept_task``) or with options.

    Args:
        agent_id: a fixed agent id; default: the id of the agent serving the call.
        subtype: default ``"agent_tool"``.
        args_handler, tags, custom_metadata, capture_telemetry, activity_id, output_names, workflow_id,
            campaign_id: as for :func:`flowcept.flowcept_task`.

    Returns:
        The wrapped function (same signature, so MCP's schema introspection sees the tool's parameters).
    """
    check_options(dict(options), _AGENT_OPTIONS, "agent_flowcept_task")
    if func is None:
        return lambda f: agent_flowcept_task(f, **options)
    return _agent_wrapper(func, **options)


def _agent_wrapper(func: Callable, agent_id: Any = None, subtype: str = AGENT_TOOL_SUBTYPE,
                   output_names: Any = "result", **options: Any) -> Callable:
    fixed_agent = str(agent_id) if agent_id is not None else None
    name = options.get("activity_id") or name_of(func)
    inner = task_wrapper(func, subtype=subtype, output_names=output_names, on_record=_on_tool_record,
                         agent_id=lambda: fixed_agent or _current_agent_id(), **options)

    if inspect.iscoroutinefunction(func):
        @functools.wraps(func)
        async def async_tool(*args, **kwargs):
            token = _call_var.set((name, fixed_agent or _current_agent_id()))
            try:
                return await inner(*args, **kwargs)
            finally:
                _call_var.reset(token)
        wrapper = async_tool
    else:
        @functools.wraps(func)
        def tool(*args, **kwargs):
            token = _call_var.set((name, fixed_agent or _current_agent_id()))
            try:
                return inner(*args, **kwargs)
            finally:
                _call_var.reset(token)
        wrapper = tool
    wrapper.__flowcept_agent_tool__ = True
    _wrappers[func] = wrapper
    return wrapper


def bind_agent_tools(app: Any) -> int:
    """Point ``app``'s registered tools at their capture wrappers; returns how many were re-pointed.

    Needed only when ``@agent_flowcept_task`` sits *above* ``@mcp.tool()``: ``tool()`` registered the plain
    function and returned it, and the wrapper made afterwards is otherwise never called by the server.
    :meth:`BaseAgentContextManager.lifespan` calls this at server start. Reads the tool registry both mcp 1.x
    ``FastMCP`` and 2.x ``MCPServer`` keep (``_tool_manager.list_tools()``); other apps are left alone.
    """
    manager = getattr(app, "_tool_manager", None)
    list_tools = getattr(manager, "list_tools", None)
    if list_tools is None:
        return 0
    count = 0
    for tool in list_tools():
        wrapper = _wrappers.get(getattr(tool, "fn", None))
        if wrapper is not None:
            try:
                tool.fn = wrapper
                count += 1
            except Exception as exc:  # noqa: BLE001
                report_internal_error(f"binding agent tool {getattr(tool, 'name', '?')}", exc)
    return count


def get_current_context_task() -> dict | None:
    """The agent tool task running now, as ``{task_id, activity_id, agent_id, workflow_id, campaign_id,
    subtype}``, or None outside a captured tool call.
    """
    call = _call_var.get()
    scope = _ctx.current_scope()
    if call is None or scope is None:
        return None
    info = {"task_id": _parent_var.get(), "activity_id": call[0], "agent_id": call[1],
            "workflow_id": scope.workflow_id, "campaign_id": scope.campaign_id, "subtype": AGENT_TOOL_SUBTYPE}
    return {k: v for k, v in info.items() if v is not None}


# ---- model invocations -----------------------------------------------------------------------------------------

def _render_prompt(args: tuple, kwargs: dict) -> str:
    if args:
        prompt = args[0]
    else:
        prompt = next((kwargs[k] for k in ("prompt", "messages", "input", "text") if k in kwargs), "")
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, (list, tuple)):
        return "\n".join(_render_message(m) for m in prompt)
    return _render_message(prompt)


def _render_message(message: Any) -> str:
    if isinstance(message, str):
        return message
    if isinstance(message, dict):
        role, content = message.get("role"), message.get("content", "")
    elif isinstance(message, (list, tuple)) and len(message) == 2:
        role, content = message
    else:
        role = getattr(message, "role", None) or getattr(message, "type", None)
        content = getattr(message, "content", message)
    text = content if isinstance(content, str) else str(content)
    return f"{str(role).capitalize()}: {text}" if role else text


def _get(obj: Any, key: str) -> Any:
    if isinstance(obj, dict):
        return obj.get(key)
    return getattr(obj, key, None)


def _response_text(response: Any) -> str:
    """The text of a model response: a string, ``.content``/``text``, OpenAI ``choices``, or Anthropic blocks."""
    if isinstance(response, str):
        return response
    choices = _get(response, "choices")
    if choices:
        first = choices[0]
        message = _get(first, "message")
        text = _get(message, "content") if message is not None else _get(first, "text")
        if text is not None:
            return str(text)
    for key in ("content", "text", "response", "output_text"):
        value = _get(response, key)
        if isinstance(value, str):
            return value
        if isinstance(value, list):  # content blocks
            return "".join(str(_get(b, "text") or "") if not isinstance(b, str) else b for b in value)
    return str(response)


def _first_int(usage: Any, *keys: str) -> int | None:
    for key in keys:
        value = _get(usage, key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def _usage(response: Any, prompt: str, text: str) -> dict:
    usage = None
    if not isinstance(response, str):
        usage = _get(response, "usage_metadata") or _get(response, "usage")
        if usage is None:
            meta = _get(response, "response_metadata")
            usage = _get(meta, "token_usage") or _get(meta, "usage") if meta is not None else None
    record: dict = {"input_chars": len(prompt), "output_chars": len(text)}
    inp = _first_int(usage, "input_tokens", "prompt_tokens") if usage is not None else None
    out = _first_int(usage, "output_tokens", "completion_tokens") if usage is not None else None
    if inp is not None or out is not None:
        total = _first_int(usage, "total_tokens")
        record.update(input_tokens=inp, output_tokens=out,
                      total_tokens=total if total is not None else (inp or 0) + (out or 0),
                      token_count_source="provider")
    else:
        inp, out = math.ceil(len(prompt) / 4), math.ceil(len(text) / 4)
        record.update(input_tokens=inp, output_tokens=out, total_tokens=inp + out,
                      token_count_source="estimated_from_chars")
    if not isinstance(response, str):
        model = _get(response, "model") or _get(_get(response, "response_metadata"), "model_name")
        if isinstance(model, str):
            record["model"] = model
        finish = _get(response, "finish_reason") or _get(response, "stop_reason")
        choices = _get(response, "choices")
        if finish is None and choices:
            finish = _get(choices[0], "finish_reason")
        if isinstance(finish, str):
            record["finish_reason"] = finish
        request_id = _get(response, "id")
        if isinstance(request_id, str):
            record["provider_request_id"] = request_id
    return record


class FlowceptLLM:
    """Wraps any model client so each invocation is a task (``subtype: "ai_model_invocation"``).

    The model may be a plain callable (``model(prompt, **kw)``) or an object with ``invoke`` (LangChain-style
    chat models work, without flowcept importing LangChain). Inside a captured tool the task's parent is the
    tool's task and its agent is the tool's agent. The task holds ``used: {"prompt": text}`` (message lists
    rendered as ``Role: content`` lines), ``generated: {"response": text}`` and, in
    ``custom_metadata["llm_usage"]``, token counts: the client's own (``usage`` / ``usage_metadata`` with
    ``input_tokens``/``prompt_tokens``, ``output_tokens``/``completion_tokens``, ``total_tokens``;
    ``token_count_source: "provider"``) or else chars/4 estimates (``"estimated_from_chars"``). A failing model
    call is recorded as ERROR and re-raised unchanged.

    Args:
        llm: the model client.
        agent_id, parent_task_id, workflow_id, campaign_id: override what the current context gives.
        return_response_object: return the client's response as is; by default return its text.
        activity_id: the task's activity (default ``"llm_interaction"``).
    """

    def __init__(self, llm: Any, agent_id: Any = None, parent_task_id: str | None = None,
                 workflow_id: str | None = None, campaign_id: str | None = None,
                 return_response_object: bool = False, activity_id: str = "llm_interaction"):
        self.llm = llm
        self.agent_id = agent_id
        self.parent_task_id = parent_task_id
        self.workflow_id = workflow_id
        self.campaign_id = campaign_id
        self.return_response_object = return_response_object
        self.activity_id = activity_id
        target = getattr(llm, "invoke", None)
        if not callable(target):
            if not callable(llm):
                raise TypeError(f"FlowceptLLM needs a callable model or one with .invoke(); got {type(llm)!r}")
            target = llm
        self._target = target
        cls = type(llm)
        self._metadata = {"class_name": getattr(llm, "__name__", None) if inspect.isroutine(llm) else cls.__name__,
                          "module": getattr(llm, "__module__", None) or cls.__module__}

    def invoke(self, *args: Any, **kwargs: Any) -> Any:
        """Call the model with these arguments, recording the invocation."""
        task, prompt = self._open(args, kwargs)
        if task is None:
            return self._result(self._target(*args, **kwargs))
        try:
            response = self._target(*args, **kwargs)
        except BaseException as exc:
            task.end(stderr=error_text(exc), status="ERROR")
            raise
        return self._close(task, prompt, response)

    async def ainvoke(self, *args: Any, **kwargs: Any) -> Any:
        """Like :meth:`invoke`, for clients with ``ainvoke`` or whose call returns an awaitable."""
        target = getattr(self.llm, "ainvoke", None)
        target = target if callable(target) else self._target
        task, prompt = self._open(args, kwargs)
        try:
            response = target(*args, **kwargs)
            if inspect.isawaitable(response):
                response = await response
        except BaseException as exc:
            if task is not None:
                task.end(stderr=error_text(exc), status="ERROR")
            raise
        return self._result(response) if task is None else self._close(task, prompt, response)

    __call__ = invoke
    call = invoke

    def _result(self, response: Any) -> Any:
        return response if self.return_response_object else _response_text(response)

    def _open(self, args: tuple, kwargs: dict):
        if _ctx.current_scope() is None:
            return None, None
        from flowcept.capture.task import FlowceptTask

        prompt = _render_prompt(args, kwargs)
        agent_id = self.agent_id if self.agent_id is not None else _current_agent_id()
        task = FlowceptTask(activity_id=self.activity_id, subtype=MODEL_INVOCATION_SUBTYPE, used={"prompt": prompt},
                            agent_id=agent_id, parent_task_id=self.parent_task_id, workflow_id=self.workflow_id,
                            campaign_id=self.campaign_id, custom_metadata=dict(self._metadata),
                            capture_telemetry=False)
        return task, prompt

    def _close(self, task: Any, prompt: str, response: Any) -> Any:
        text = _response_text(response)
        try:
            usage = _usage(response, prompt, text)
        except Exception as exc:  # noqa: BLE001
            report_internal_error("llm usage", exc)
            usage = {}
        task.end(generated={"response": text}, custom_metadata={"llm_usage": usage})
        return response if self.return_response_object else text

    def __getattr__(self, name: str) -> Any:
        if name == "llm":
            raise AttributeError(name)
        # Anything else (bind_tools, model_name...) goes to the wrapped client.
        return getattr(self.llm, name)

    def __repr__(self) -> str:
        return f"FlowceptLLM({self.llm!r})"
