"""Alias of :mod:`flowcept.instrumentation.loop` (the reference implementation's path)."""

from flowcept.capture.loop import FlowceptLightweightLoop, FlowceptLoop

__all__ = ["FlowceptLightweightLoop", "FlowceptLoop"]
