"""A small workflow captured on the embedded default (SQLite store + JSONL buffer file), then queried."""

from flowcept import Flowcept, FlowceptTask, flowcept_task


@flowcept_task(output_names="z")
def add_one(x):
    return x + 1


@flowcept_task(output_names=["mean", "total"], tags=["stats"])
def summarize(values):
    return sum(values) / len(values), sum(values)


def main() -> None:
    with Flowcept(workflow_name="quickstart", workflow_args={"n": 5}) as flowcept:
        values = [add_one(i) for i in range(5)]
        with FlowceptTask(activity_id="report", used={"values": values}) as task:
            mean, total = summarize(values)
            task.end(generated={"mean": mean})

    tasks = Flowcept.db.task_query({"workflow_id": flowcept.workflow_id}, sort=[("started_at", 1)])
    print(f"workflow {flowcept.workflow_id}: {len(tasks)} tasks stored")
    for t in tasks:
        print(f"  {t['activity_id']:10s} used={t.get('used')} generated={t.get('generated')} {t['status']}")
    from flowcept.settings import get_settings

    print(f"store: {get_settings().databases.sqlite.path}  (query it with: flowcept query --filter "
          f"'{{\"workflow_id\": \"{flowcept.workflow_id}\"}}')")
    print(f"buffer file: {flowcept.report.buffer_file}")


if __name__ == "__main__":
    main()
