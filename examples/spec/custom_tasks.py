"""Spec: Custom Task Creation (fully customizable)."""
from flowcept import Flowcept
from flowcept.instrumentation.task import FlowceptTask

with Flowcept(workflow_name="custom_tasks"):
    # Context-managed publish
    with FlowceptTask(activity_id="download", used={"url": "https://..."}) as t:
        data = b"..."  # Some binary data
        t.end(data=data, generated={"bytes": len(data)})

    # Or publish explicitly
    task = FlowceptTask(activity_id="parse", used={"bytes": len(data)})
    task.end({"records": 42})
    task.send()  # publishes to MQ (here: a no-op, the task already ended)

print([r.get("activity_id", r["type"]) for r in Flowcept.read_buffer_file()])
