"""Spec: Custom Arguments Handler - drop big inputs from the captured provenance."""
from flowcept import Flowcept

ARGS_TO_DROP = ["very_big_list", "super_large_matrix"]


def custom_args_handler(*args, **kwargs):
    if len(args):
        raise Exception("In this simple example, we are assuming that"
                        "functions will be called using named args only.")
    handled = {}
    # Add all args/kwargs normally
    for i, arg in enumerate(args):
        handled[f"arg_{i}"] = arg
    handled.update(kwargs)
    # Drop unwanted inputs
    for k in ARGS_TO_DROP:
        handled.pop(k, None)
    return handled


from flowcept import flowcept_task  # noqa: E402


@flowcept_task(args_handler=custom_args_handler, output_names="result")
def heavy_function(x, very_big_list, super_large_matrix):
    # Some expensive computation
    return x * 2


with Flowcept(workflow_name="custom_handler") as f:
    result = heavy_function(x=3, very_big_list=list(range(10_000)), super_large_matrix=[[0] * 100] * 100)

# Only "x" and "result" are recorded in the provenance.
task = Flowcept.db.task_query({"workflow_id": f.workflow_id})[0]
print(task["used"], task["generated"])
