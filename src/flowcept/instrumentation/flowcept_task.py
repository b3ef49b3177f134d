"""`@flowcept_task` and its variants."""

from flowcept.capture.decorator import (
    default_args_handler,
    flowcept_task,
    get_current_context_task_id,
    lightweight_flowcept_task,
    telemetry_flowcept_task,
)

__all__ = [
    "default_args_handler",
    "flowcept_task",
    "get_current_context_task_id",
    "lightweight_flowcept_task",
    "telemetry_flowcept_task",
]
