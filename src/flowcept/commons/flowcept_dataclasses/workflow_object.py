"""WorkflowObject (compatibility path)."""

from flowcept.records import WorkflowObject

__all__ = ["WorkflowObject"]
