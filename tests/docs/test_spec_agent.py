"""The spec's "MCP Agent Workflows" snippet, run against a real MCP server and client session.

The snippet is mcp 1.x code (``from mcp.server.fastmcp import FastMCP``, ``mcp.get_context()``); under mcp 2.x the
same tool is written the 2.x way (``MCPServer``, an injected ``ctx: Context``). Its undefined helpers are given
small deterministic definitions here, and ``generate_response(result)`` (``result`` is unbound in the snippet) reads
``generate_response(response)``. ``require_session=True`` is dropped: no released FastMCP accepts it (1.x raises
TypeError).
"""

from __future__ import annotations

import asyncio

import pytest

pytest.importorskip("mcp")
# The isolation fixture points FLOWCEPT_SETTINGS_PATH at a missing file on purpose.
pytestmark = pytest.mark.filterwarnings("ignore:FLOWCEPT_SETTINGS_PATH")

from flowcept import Flowcept  # noqa: E402
from flowcept.flowceptor.consumers.agent.base_agent_context_manager import BaseAgentContextManager  # noqa: E402
from flowcept.instrumentation.flowcept_agent_task import FlowceptLLM, agent_flowcept_task  # noqa: E402
from tests.capture.test_agent import _session_calls, fixture_agent_env  # noqa: E402,F401

try:
    from mcp.server.fastmcp import FastMCP
    MCP_MAJOR = 1
except ImportError:
    from mcp.server.mcpserver import Context, MCPServer
    MCP_MAJOR = 2


class AgentController(BaseAgentContextManager):
    """The snippet's controller."""


def build_llm_model():
    return FlowceptLLM(lambda messages: {"content": "3", "usage": {"input_tokens": 5, "output_tokens": 1}})


def generate_prompt(x, y):
    return [{"role": "system", "content": "You add numbers."}, {"role": "user", "content": f"{x} + {y}?"}]


def generate_response(response):
    return {"answer": response}


def _build_server(seen: dict):
    agent_controller = AgentController()  # Must be a subclass of ...BaseAgentContextManager
    if MCP_MAJOR == 1:
        mcp = FastMCP("AnC_Agent_mock", lifespan=agent_controller.lifespan)

        @mcp.tool()
        @agent_flowcept_task  # Must be in this order. @mcp.tool then @flowcept_task
        def tool_example(x, y, campaign_id=None):
            llm = build_llm_model()
            ctx = mcp.get_context()
            history = ctx.request_context.lifespan_context.history
            seen["history_len"] = len(history)
            messages = generate_prompt(x, y)
            response = llm.invoke(messages)
            result = generate_response(response)
            return result
    else:
        mcp = MCPServer("AnC_Agent_mock", lifespan=agent_controller.lifespan)

        @mcp.tool()
        @agent_flowcept_task
        def tool_example(x: int, y: int, ctx: Context, campaign_id: str | None = None) -> dict:
            llm = build_llm_model()
            history = ctx.request_context.lifespan_context.history
            seen["history_len"] = len(history)
            messages = generate_prompt(x, y)
            response = llm.invoke(messages)
            result = generate_response(response)
            return result
    return agent_controller, mcp


def test_mcp_agent_snippet():
    """Two tool calls give two agent_tool tasks, each with one model-invocation child, and a growing history."""
    seen: dict = {}
    agent, server = _build_server(seen)
    _, r1, r2 = asyncio.run(_session_calls(server, [("tool_example", {"x": 1, "y": 2}),
                                                    ("tool_example", {"x": 1, "y": 2})]))
    assert seen["history_len"] == 1  # the first call's task was in the history during the second
    tools = Flowcept.db.task_query({"subtype": "agent_tool"})
    llms = Flowcept.db.task_query({"subtype": "ai_model_invocation"})
    assert len(tools) == 2 and len(llms) == 2
    for tool in tools:
        assert tool["activity_id"] == "tool_example"
        assert tool["agent_id"] == agent.agent_id
        assert tool["used"] == {"x": 1, "y": 2, "campaign_id": None}
        assert tool["generated"] == {"answer": "3"}
        assert tool["status"] == "FINISHED"
    assert sorted(t["parent_task_id"] for t in llms) == sorted(t["task_id"] for t in tools)
    assert llms[0]["used"] == {"prompt": "System: You add numbers.\nUser: 1 + 2?"}
    assert llms[0]["custom_metadata"]["llm_usage"]["token_count_source"] == "provider"
    assert llms[0]["custom_metadata"]["llm_usage"]["total_tokens"] == 6
