"""Spec: The Flowcept() Object - Using the Context Manager."""
from flowcept import Flowcept, flowcept_task


@flowcept_task(output_names="z")
def add_one(x): return x + 1


with Flowcept(workflow_name="my_workflow"):
    # all code inside belongs to the workflow
    z = add_one(7)
    print(z)
