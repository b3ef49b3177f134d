"""Spec: Custom task usage patterns (explicit end vs send)."""
from time import sleep
from flowcept import Flowcept, FlowceptTask
from uuid import uuid4

flowcept = Flowcept(
    start_persistence=False,
    save_workflow=True,
    workflow_name="MyFirstWorkflow",
)
flowcept.start()

agent1 = uuid4()
FlowceptTask(activity_id="super_func1", used={"x": 1}, agent_id=agent1, tags=["tag1"]).send()

with FlowceptTask(activity_id="super_func2", used={"y": 1}, agent_id=agent1, tags=["tag2"]) as t2:
    sleep(0.5)
    t2.end(generated={"o": 3})

t3 = FlowceptTask(activity_id="super_func3", used={"z": 1}, agent_id=agent1, tags=["tag3"])
sleep(0.1)
t3.end(generated={"w": 1})

flowcept.stop()

flowcept_messages = Flowcept.read_buffer_file()
assert len(flowcept_messages) == 4
print(len(flowcept_messages), "records")
