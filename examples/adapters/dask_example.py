"""Dask adapter: every Dask task becomes a task record (inputs, outputs, times, worker, dependencies).

Run: python dask_example.py   (needs: pip install 'flowcept[dask]')
"""
import dask
from distributed import Client, LocalCluster

from flowcept import Flowcept, flowcept_task


@flowcept_task(output_names="scaled")
def scale(x, factor=10):
    return x * factor


def inc(x):
    return scale(x) + 1  # a decorated call inside a Dask task: its parent is the Dask task


def add(a, b):
    return a + b


if __name__ == "__main__":
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        with Flowcept(interceptors=["instrumentation", "dask"], dask_client=client,
                      workflow_name="dask-example") as fc:
            futures = client.map(inc, [1, 2, 3])
            total = client.submit(sum, futures)
            left, right = dask.delayed(inc)(4), dask.delayed(inc)(5)
            both = dask.delayed(add)(left, right)
            print("results:", total.result(), client.compute(both).result())

    tasks = Flowcept.db.task_query({"workflow_id": fc.workflow_id, "adapter_id": "dask"})
    children = Flowcept.db.task_query({"workflow_id": fc.workflow_id, "activity_id": "scale"})
    edges = sum(len(t.get("dependencies", [])) for t in tasks)
    print(f"{len(tasks)} dask tasks, {len(children)} decorated calls inside them, {edges} dependency edges")
