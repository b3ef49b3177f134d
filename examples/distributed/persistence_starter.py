from flowcept import Flowcept
flowcept = Flowcept(workflow_name="distributed_process_example", start_persistence=True, check_safe_stops=False)
# Using check_safe_stops=False allow users to fully control when is best to stop Flowcept.
# Because of that, this process will need to be manually killed later
# (via ctrl+c or leaving the HPC job scheduler kill it automatically when the job finishes)
with open('workflow_id.txt', 'w') as f:
    f.write(flowcept.current_workflow_id) # This will enable the provenance tasks to be linked to this consumer and workflow.
flowcept.start()
