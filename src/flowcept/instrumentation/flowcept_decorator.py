"""`@flowcept`: a function as a workflow."""

from flowcept.capture.workflow import flowcept

__all__ = ["flowcept"]
