"""`FlowceptTask`: explicit tasks."""

from flowcept.capture.task import FlowceptTask

__all__ = ["FlowceptTask"]
