"""Alias of :mod:`flowcept.instrumentation.task` (the reference implementation's path)."""

from flowcept.capture.task import FlowceptTask

__all__ = ["FlowceptTask"]
