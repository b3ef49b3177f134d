"""TaskObject (compatibility path)."""

from flowcept.records import TaskObject

__all__ = ["TaskObject"]
