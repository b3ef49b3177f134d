"""`@agent_flowcept_task`, `FlowceptLLM` and `get_current_context_task`."""

from flowcept.capture.agent import FlowceptLLM, agent_flowcept_task, get_current_context_task

__all__ = ["FlowceptLLM", "agent_flowcept_task", "get_current_context_task"]
