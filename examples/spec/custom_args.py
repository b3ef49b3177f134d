"""Spec: Example with Custom Args (interceptors limited to instrumentation: no Dask client here)."""
from flowcept import Flowcept, flowcept_task


@flowcept_task(output_names="loss")
def train_model():
    return 0.42


with Flowcept(
    workflow_name="training_workflow",
    workflow_subtype="ml_workflow",
    campaign_id="experiment_42",
    start_persistence=True,
    interceptors=["instrumentation"],
    workflow_args={"epochs_list": [10, 100], "learning_rates": [0.1, 0.01, 0.001]}
):
    train_model()

print(Flowcept.db.workflow_query({"campaign_id": "experiment_42"})[-1]["used"])
