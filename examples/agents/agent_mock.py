"""A mock MCP agent whose tool calls (and the model call inside one) are captured by flowcept.

Run it as an MCP stdio server: ``python examples/agents/agent_mock.py``. Works with mcp 1.x (``FastMCP``) and
2.x (``MCPServer``). The "model" is a deterministic local stand-in returning a canned answer with token usage.
"""

from __future__ import annotations

try:  # mcp 2.x
    from mcp.server.mcpserver import MCPServer as Server
except ImportError:  # mcp 1.x
    from mcp.server.fastmcp import FastMCP as Server

from flowcept.flowceptor.consumers.agent.base_agent_context_manager import BaseAgentContextManager
from flowcept.instrumentation.flowcept_agent_task import FlowceptLLM, agent_flowcept_task


class AgentController(BaseAgentContextManager):
    """The mock agent's context manager."""


def stand_in_model(prompt: str) -> dict:
    """A local model: a canned chat-completion-shaped answer with usage counts."""
    return {"model": "stand-in-1", "content": f"echo: {prompt}",
            "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}}


agent_controller = AgentController(agent_name="AnC_Agent_mock")
mcp = Server("AnC_Agent_mock", lifespan=agent_controller.lifespan)


@mcp.tool()
@agent_flowcept_task
def add(x: int, y: int, campaign_id: str | None = None) -> int:
    """Add two numbers."""
    return x + y


@mcp.tool()
@agent_flowcept_task
def ask(question: str) -> dict:
    """Ask the (stand-in) model a question."""
    llm = FlowceptLLM(stand_in_model)
    return {"answer": llm.invoke([{"role": "user", "content": question}])}


@mcp.tool()
@agent_flowcept_task
def fail(reason: str) -> str:
    """Always fails."""
    raise ValueError(reason)


if __name__ == "__main__":
    mcp.run()
