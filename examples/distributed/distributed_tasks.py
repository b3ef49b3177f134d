import sys
from flowcept import Flowcept, flowcept_task
workflow_id = sys.argv[1]
@flowcept_task
def double(x):
    return 2 * x
# Initialize Flowcept
flowcept = Flowcept(
    workflow_id=workflow_id,
    start_persistence=False,
    check_safe_stops=False,
    save_workflows=False,
)
# This will only establish connection to the MQ, not to the DB.
flowcept.start()
# Example task
y = double(21)
print(f"Result: {y}")
flowcept.stop()
