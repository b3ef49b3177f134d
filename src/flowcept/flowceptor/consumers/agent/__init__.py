"""Agent capture for MCP servers: :class:`BaseAgentContextManager` and its ``lifespan``."""

from flowcept.flowceptor.consumers.agent.base_agent_context_manager import BaseAgentContextManager, BaseAppContext

__all__ = ["BaseAgentContextManager", "BaseAppContext"]
