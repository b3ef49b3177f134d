"""A script written the way the reference implementation's examples are: its module paths, `configs` constants,
`Flowcept.buffer`, agents, `@flowcept` and the `Flowcept.db` API (charts and objects included). It runs unchanged on
flowcept."""

from flowcept import Flowcept, FlowceptTask, flowcept_task
from flowcept.commons.flowcept_dataclasses.agent_object import AgentObject
from flowcept.commons.flowcept_dataclasses.workflow_object import WorkflowObject
from flowcept.commons.flowcept_logger import FlowceptLogger
from flowcept.commons.utils import replace_non_serializable
from flowcept.commons.vocabulary import Status
from flowcept.configs import DUMP_BUFFER_PATH, INSTRUMENTATION_ENABLED, settings
from flowcept.instrumentation.flowcept_decorator import flowcept

logger = FlowceptLogger()


@flowcept_task
def sum_one(n):
    return n + 1


@flowcept_task
def mult_two(n):
    return n * 2


@flowcept
def main():
    return mult_two(sum_one(3))


if __name__ == "__main__":
    assert INSTRUMENTATION_ENABLED and "project" in settings
    # The reference's quickstart: a decorated main and two tasks give two records in the buffer file.
    assert main() == 8
    assert len(Flowcept.read_buffer_file()) == 2, DUMP_BUFFER_PATH

    with Flowcept(workflow_name="training", agent_name="trainer", campaign_id="campaign-1") as fc:
        with FlowceptTask(activity_id="prepare", used={"rows": 100}) as task:
            task.end(generated={"ok": True})
        live = Flowcept.buffer  # this process's captured records of the running workflow
        assert {r["type"] for r in live} == {"workflow", "task", "agent"}
    # Read back the campaign after the block, as the reference's examples do.
    tasks = Flowcept.db.task_query({"campaign_id": Flowcept.campaign_id})
    assert [t["activity_id"] for t in tasks] == ["prepare"]
    assert Flowcept.db.get_agent_object(fc.agent_id).name == "trainer"
    wf = Flowcept.db.get_workflow_object(fc.workflow_id)
    assert isinstance(wf, WorkflowObject) and wf.status == Status.FINISHED

    db = Flowcept.db
    db.insert_or_update_agent(AgentObject(agent_id="reviewer", name="reviewer", workflow_id=fc.workflow_id))
    db.save_workflow_domain_data_schema(fc.workflow_id, {"rows": "int"})
    assert db.get_workflow_domain_data_schema(fc.workflow_id) == {"rows": "int"}
    # Chart the workflow's tasks along time, then drop a model saved for it.
    chart = db.resolve_chart_data({"collection": "tasks", "y": ["activity_id"]},
                                  context={"workflow_id": fc.workflow_id})
    assert chart["series"] == {"activity_id": ["prepare"]}
    model_id = db.insert_or_update_ml_model(b"weights", workflow_id=fc.workflow_id)
    assert db.delete_object_keys("object_id", [model_id]) == 1
    print(replace_non_serializable({"status": Status.FINISHED, "tasks": len(tasks), "services": Flowcept.services_status()}))
