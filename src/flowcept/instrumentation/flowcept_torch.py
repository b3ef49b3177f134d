"""`@flowcept_torch`, the epoch and batch loops, and the model profile."""

from flowcept.capture.torch import FlowceptBatchLoop, FlowceptEpochLoop, flowcept_torch, get_torch_model_profile

__all__ = ["FlowceptBatchLoop", "FlowceptEpochLoop", "flowcept_torch", "get_torch_model_profile"]
