"""AgentObject (compatibility path)."""

from flowcept.records import AgentObject

__all__ = ["AgentObject"]
