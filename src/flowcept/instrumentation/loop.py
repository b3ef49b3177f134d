"""`FlowceptLoop` and `FlowceptLightweightLoop`."""

from flowcept.capture.loop import FlowceptLightweightLoop, FlowceptLoop

__all__ = ["FlowceptLightweightLoop", "FlowceptLoop"]
