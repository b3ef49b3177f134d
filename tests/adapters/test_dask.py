"""Dask adapter against a real LocalCluster with process workers: one task record per Dask task."""

from __future__ import annotations

import pytest

pytest.importorskip("distributed")

import dask  # noqa: E402
from distributed import Client, LocalCluster  # noqa: E402

from flowcept import Flowcept, flowcept_task  # noqa: E402
from flowcept.errors import ConfigError  # noqa: E402
from tests.conftest import write_settings  # noqa: E402

pytestmark = pytest.mark.timeout(180)


# Task functions live at module level: the workers import them by reference.
def inc(x, y=1):
    return x + y


def add(a, b):
    return a + b


def boom(x):
    raise ValueError(f"bad input {x}")


def make_pair(n):
    return {"n": n, "sq": n * n}


@flowcept_task(output_names="doubled")
def double(v):
    return 2 * v


def calls_decorated(x):
    return double(x) + 1


def own_record(x):
    from flowcept.flowceptor.adapters.dask.dask_plugins import get_flowcept_task

    record = get_flowcept_task()
    return {"task_id": record["task_id"], "activity_id": record["activity_id"], "used": record["used"]}


@pytest.fixture(name="cluster", scope="module")
def fixture_cluster():
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        yield cluster


@pytest.fixture(name="client")
def fixture_client(cluster):
    with Client(cluster) as client:
        yield client


def dask_tasks(workflow_id: str) -> dict:
    """The workflow's Dask task records by task id."""
    return {t["task_id"]: t for t in Flowcept.db.task_query({"workflow_id": workflow_id, "adapter_id": "dask"})}


class TestDaskAdapter:
    def test_submit_map_and_futures_as_arguments(self, client):
        """submit, map and a future passed as an argument each give one record with the documented fields."""
        workers = set(client.scheduler_info()["workers"])
        with Flowcept(interceptors=["instrumentation", "dask"], dask_client=client) as f:
            a = client.submit(inc, 1, y=2)
            b = client.submit(add, a, 10)
            pairs = client.map(make_pair, [3, 4])
            assert b.result() == 13 and client.gather(pairs)[1] == {"n": 4, "sq": 16}
        tasks = dask_tasks(f.workflow_id)
        assert len(tasks) == 4
        ta, tb = tasks[a.key], tasks[b.key]
        assert ta["activity_id"] == "inc" and ta["used"] == {"x": 1, "y": 2} and ta["generated"] == {"arg_0": 3}
        assert tb["activity_id"] == "add" and tb["used"] == {"a": 3, "b": 10} and tb["generated"] == {"arg_0": 13}
        assert tb["dependencies"] == [a.key] and "dependencies" not in ta
        for t in (ta, tb):
            assert t["status"] == "FINISHED" and t["workflow_id"] == f.workflow_id
            assert t["campaign_id"] == f.campaign_id and t["address"] in workers and t["hostname"]
            assert 0 < t["started_at"] <= t["ended_at"]
        assert tasks[pairs[1].key]["generated"] == {"n": 4, "sq": 16}
        assert tasks[pairs[0].key]["used"] == {"n": 3}
        assert f.report.adapters["dask"]["captured"] >= 4 and f.report.adapter_errors == {"dask": 0}

    def test_delayed_diamond_dependencies(self, client):
        """A delayed graph with a diamond records each task's upstream task ids."""
        with Flowcept(interceptors=["dask"], dask_client=client) as f:
            top = dask.delayed(inc)(1)
            left = dask.delayed(add)(top, 10)
            right = dask.delayed(add)(top, 20)
            bottom = dask.delayed(add)(left, right)
            assert client.compute(bottom).result() == 2 + 12 + 22 - 2
        tasks = dask_tasks(f.workflow_id)
        assert len(tasks) == 4
        by_inputs = {tuple(sorted(t["used"].items())): t for t in tasks.values()}
        t_top = by_inputs[(("x", 1), ("y", 1))]
        t_left, t_right = by_inputs[(("a", 2), ("b", 10))], by_inputs[(("a", 2), ("b", 20))]
        t_bottom = by_inputs[(("a", 12), ("b", 22))]
        assert "dependencies" not in t_top
        assert t_left["dependencies"] == [t_top["task_id"]] == t_right["dependencies"]
        assert sorted(t_bottom["dependencies"]) == sorted([t_left["task_id"], t_right["task_id"]])
        assert t_bottom["generated"] == {"arg_0": 34}

    def test_failing_task(self, client):
        """A task that raises is stored with status ERROR, its exception and its traceback."""
        with Flowcept(interceptors=["dask"], dask_client=client) as f:
            fut = client.submit(boom, 7)
            with pytest.raises(ValueError, match="bad input 7"):
                fut.result()
        (task,) = dask_tasks(f.workflow_id).values()
        assert task["task_id"] == fut.key and task["status"] == "ERROR" and task["used"] == {"x": 7}
        assert "ValueError" in task["stderr"]["exception"] and "bad input 7" in task["stderr"]["exception"]
        assert "boom" in task["stderr"]["traceback"] and "generated" not in task

    @pytest.mark.slow
    def test_thousand_tasks_counted_exactly(self, client):
        """1,000 tasks finished before stop() are all stored when it returns, each once."""
        with Flowcept(interceptors=["dask"], dask_client=client) as f:
            futures = client.map(inc, range(1000))
            assert sum(client.gather(futures)) == sum(range(1, 1001))
        tasks = dask_tasks(f.workflow_id)
        assert set(tasks) == {fut.key for fut in futures}
        assert all(t["status"] == "FINISHED" and t["generated"]["arg_0"] == t["used"]["x"] + 1
                   for t in tasks.values())

    def test_decorated_function_inside_dask_task(self, client):
        """A @flowcept_task called inside a Dask task joins the workflow with the Dask task as parent."""
        with Flowcept(interceptors=["instrumentation", "dask"], dask_client=client) as f:
            futures = client.map(calls_decorated, [1, 2])
            assert client.gather(futures) == [3, 5]
        inner = Flowcept.db.task_query({"workflow_id": f.workflow_id, "activity_id": "double"})
        assert sorted((t["used"]["v"], t["generated"]["doubled"]) for t in inner) == [(1, 2), (2, 4)]
        parents = {t["used"]["v"]: t["parent_task_id"] for t in inner}
        assert parents == {1: futures[0].key, 2: futures[1].key}
        assert all(t["campaign_id"] == f.campaign_id and "adapter_id" not in t for t in inner)

    def test_decorated_function_shipped_by_value(self, client):
        """A decorated function that is not importable (as in __main__) is pickled by value and still captured."""
        import cloudpickle

        @flowcept_task(output_names="half")
        def halve(v):
            return v / 2

        def run_halve(x):
            return halve(x)

        assert cloudpickle.loads(cloudpickle.dumps(halve)).__name__ == "halve"
        with Flowcept(interceptors=["instrumentation", "dask"], dask_client=client) as f:
            fut = client.submit(run_halve, 8)
            assert fut.result() == 4
        (inner,) = Flowcept.db.task_query({"workflow_id": f.workflow_id, "activity_id": "halve"})
        assert inner["generated"] == {"half": 4.0} and inner["parent_task_id"] == fut.key

    def test_get_flowcept_task_inside_a_task(self, client):
        """get_flowcept_task() returns the running Dask task's record."""
        with Flowcept(interceptors=["dask"], dask_client=client):
            fut = client.submit(own_record, 5)
            assert fut.result() == {"task_id": fut.key, "activity_id": "own_record", "used": {"x": 5}}

    def test_worker_joining_later_is_linked(self, client, cluster):
        """A worker started while the workflow runs records its tasks into it."""
        with Flowcept(interceptors=["dask"], dask_client=client) as f:
            before = set(client.scheduler_info()["workers"])
            cluster.scale(3)
            client.wait_for_workers(3, timeout=60)
            (new,) = set(client.scheduler_info()["workers"]) - before
            fut = client.submit(inc, 41, workers=[new], pure=False)
            assert fut.result() == 42
        cluster.scale(2)
        task = dask_tasks(f.workflow_id)[fut.key]
        assert task["address"] == new and task["generated"] == {"arg_0": 42}

    def test_nothing_captured_after_stop(self, client):
        """Tasks run after stop() are not recorded."""
        with Flowcept(interceptors=["dask"], dask_client=client) as f:
            assert client.submit(inc, 1, pure=False).result() == 2
        after = client.submit(inc, 2, pure=False)
        assert after.result() == 3
        assert Flowcept.db.task_query({"task_id": after.key}) == []
        assert len(dask_tasks(f.workflow_id)) == 1

    def test_closed_client_never_breaks_the_program(self, cluster):
        """A client closed before stop(): stop() returns, and the failure is counted in the report."""
        client = Client(cluster)
        f = Flowcept(interceptors=["dask"], dask_client=client).start()
        assert client.submit(inc, 1, pure=False).result() == 2
        client.close()
        report = f.stop()
        assert report.adapter_errors["dask"] >= 1

    def test_settings_turn_inputs_and_outputs_off(self, client, tmp_path, monkeypatch):
        """worker_should_get_input/output false leave used/generated out; an adapters.<key> names the adapter."""
        write_settings(tmp_path, "adapters:\n  mydask:\n    kind: dask\n    worker_should_get_input: false\n"
                                 "    worker_should_get_output: false\n", monkeypatch)
        with Flowcept(interceptors=["mydask"], dask_client=client) as f:
            fut = client.submit(inc, 5, pure=False)
            assert fut.result() == 6
        (task,) = Flowcept.db.task_query({"workflow_id": f.workflow_id, "type": "task"})
        assert task["adapter_id"] == "mydask" and task["activity_id"] == "inc" and task["status"] == "FINISHED"
        assert "used" not in task and "generated" not in task


class TestDaskConfig:
    def test_dask_without_client(self):
        """The dask interceptor without dask_client is a ConfigError naming the argument."""
        with pytest.raises(ConfigError) as err:
            Flowcept(interceptors=["instrumentation", "dask"])
        assert err.value.key == "dask_client" and "dask_client=client" in str(err.value)
