"""The documented import paths exist and the package stays light to import."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import flowcept

DOCUMENTED = {
    "flowcept": ["Flowcept", "flowcept_task", "telemetry_flowcept_task", "lightweight_flowcept_task",
                 "FlowceptTask", "FlowceptLoop", "FlowceptLightweightLoop", "flowcept_torch", "TaskObject",
                 "WorkflowObject", "AgentObject", "FlowceptDaskWorkerAdapter", "SETTINGS_PATH", "__version__"],
    "flowcept.instrumentation.flowcept_task": ["flowcept_task", "telemetry_flowcept_task",
                                               "lightweight_flowcept_task", "default_args_handler",
                                               "get_current_context_task_id"],
    "flowcept.instrumentation.flowcept_decorator": ["flowcept"],
    "flowcept.instrumentation.task": ["FlowceptTask"],
    "flowcept.instrumentation.task_capture": ["FlowceptTask"],
    "flowcept.instrumentation.loop": ["FlowceptLoop", "FlowceptLightweightLoop"],
    "flowcept.instrumentation.flowcept_loop": ["FlowceptLoop", "FlowceptLightweightLoop"],
    "flowcept.commons.vocabulary": ["Status", "ML_Types", "PROV_AGENT"],
    "flowcept.commons.flowcept_dataclasses.task_object": ["TaskObject"],
    "flowcept.commons.flowcept_dataclasses.workflow_object": ["WorkflowObject"],
    "flowcept.commons.flowcept_dataclasses.agent_object": ["AgentObject"],
    "flowcept.flowcept_api.db_api": ["DBAPI"],
    "flowcept.flowcept_api.flowcept_controller": ["Flowcept"],
    "flowcept.flowceptor.consumers.base_consumer": ["BaseConsumer"],
    "flowcept.flowceptor.adapters.dask.dask_plugins": ["FlowceptDaskWorkerAdapter", "get_flowcept_task"],
    "flowcept.configs": ["SETTINGS_PATH", "PROJECT_NAME", "DB_FLUSH_MODE", "MQ_ENABLED", "MQ_TYPE",
                         "DUMP_BUFFER_ENABLED", "DUMP_BUFFER_PATH", "TELEMETRY_ENABLED"],
}


@pytest.mark.parametrize("module", sorted(DOCUMENTED))
def test_documented_names(module):
    """Every documented name imports from its documented module."""
    mod = importlib.import_module(module)
    for name in DOCUMENTED[module]:
        assert getattr(mod, name) is not None, f"{module}.{name}"


def test_same_objects_everywhere():
    """Aliases are the same objects, and read_messages_file is read_buffer_file."""
    from flowcept.instrumentation.task import FlowceptTask
    from flowcept.instrumentation.task_capture import FlowceptTask as Alias

    assert FlowceptTask is Alias is flowcept.FlowceptTask
    assert flowcept.Flowcept.read_messages_file is flowcept.Flowcept.read_buffer_file


def test_records_round_trip():
    """TaskObject/WorkflowObject/AgentObject convert to and from dicts; None fields are omitted."""
    from flowcept import AgentObject, TaskObject, WorkflowObject
    from flowcept.commons.vocabulary import Status

    t = TaskObject(task_id="t1", activity_id="a", status=Status.FINISHED, used={"x": 1}, stderr=None)
    assert t.to_dict() == {"task_id": "t1", "activity_id": "a", "status": "FINISHED", "used": {"x": 1},
                           "type": "task"}
    back = TaskObject.from_dict({**t.to_dict(), "unknown_key": 1})
    assert back == t and back.status is Status.FINISHED
    assert WorkflowObject(workflow_id="w", name="n").to_dict() == {"workflow_id": "w", "name": "n",
                                                                    "type": "workflow"}
    agent = AgentObject.from_dict({"agent_id": "a1"}).to_dict()  # registered_at: set at construction
    assert agent == {"agent_id": "a1", "registered_at": agent["registered_at"], "type": "agent"}
    assert AgentObject.from_dict({"agent_id": "a1", "registered_at": 2.0}).to_dict()["registered_at"] == 2.0
    assert Status.get_finished_statuses() == [Status.FINISHED, Status.ERROR]


def test_import_is_light():
    """`import flowcept` (and using the core API) pulls in no pandas, torch, dask, redis, psycopg or mlflow."""
    code = ("import sys, flowcept\n"
            "from flowcept import Flowcept, flowcept_task, FlowceptTask\n"
            "heavy = [m for m in ('pandas', 'torch', 'dask', 'redis', 'psycopg', 'mlflow', 'numpy', 'psutil') "
            "if m in sys.modules]\n"
            "print(','.join(heavy))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


@pytest.mark.parametrize("module", ["flowcept.store.sqlite", "flowcept.store.merge", "flowcept.records"])
def test_store_imports_no_producer_or_keeper(module):
    """A store module loads neither the keeper nor the producer's buffer (which registers fork and exit hooks)."""
    code = (f"import sys, {module}\n"
            "print(','.join(m for m in ('flowcept.keeper', 'flowcept.buffer', 'flowcept._runtime', "
            "'flowcept.capture') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
