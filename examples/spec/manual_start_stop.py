"""Spec: The Flowcept() Object - Manual Start/Stop."""
from flowcept import Flowcept, flowcept_task


@flowcept_task
def double(x): return 2 * x


flowcept = Flowcept(workflow_name="manual_example")
flowcept.start()
y = double(21)
print("Result:", y)
flowcept.stop()
