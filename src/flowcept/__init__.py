"""flowcept: runtime provenance capture for scientific, HPC, ML and agentic workflows.

Public names load lazily, so ``import flowcept`` stays light (no pandas, torch, dask, redis or psycopg).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_PUBLIC = {
    "Flowcept": "flowcept.controller:Flowcept",
    "flowcept_task": "flowcept.capture.decorator:flowcept_task",
    "telemetry_flowcept_task": "flowcept.capture.decorator:telemetry_flowcept_task",
    "lightweight_flowcept_task": "flowcept.capture.decorator:lightweight_flowcept_task",
    "default_args_handler": "flowcept.capture.decorator:default_args_handler",
    "FlowceptTask": "flowcept.capture.task:FlowceptTask",
    "FlowceptLoop": "flowcept.capture.loop:FlowceptLoop",
    "FlowceptLightweightLoop": "flowcept.capture.loop:FlowceptLightweightLoop",
    "flowcept_torch": "flowcept.capture.torch:flowcept_torch",
    "FlowceptDaskWorkerAdapter": "flowcept.adapters.dask:FlowceptDaskWorkerAdapter",
    "TaskObject": "flowcept.records:TaskObject",
    "WorkflowObject": "flowcept.records:WorkflowObject",
    "AgentObject": "flowcept.records:AgentObject",
    "BlobObject": "flowcept.records:BlobObject",
    "Status": "flowcept.records:Status",
    "register_dict_class": "flowcept.serialize:register_dict_class",
    "FlowceptError": "flowcept.errors:FlowceptError",
    "ConfigError": "flowcept.errors:ConfigError",
    "BackendUnavailableError": "flowcept.errors:BackendUnavailableError",
    "TransportError": "flowcept.errors:TransportError",
    "StoreError": "flowcept.errors:StoreError",
    "QueryError": "flowcept.errors:QueryError",
    "StopTimeoutError": "flowcept.errors:StopTimeoutError",
    "ObjectNotFoundError": "flowcept.errors:ObjectNotFoundError",
    "ObjectIntegrityError": "flowcept.errors:ObjectIntegrityError",
    "SETTINGS_PATH": "flowcept.configs:SETTINGS_PATH",
}

__all__ = sorted([*_PUBLIC, "__version__"])


def __getattr__(name: str) -> Any:
    try:
        target = _PUBLIC[name]
    except KeyError:
        raise AttributeError(f"module 'flowcept' has no attribute {name!r}") from None
    module, _, attr = target.partition(":")
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
