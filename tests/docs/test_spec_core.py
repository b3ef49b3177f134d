"""The spec's core snippets (Flowcept object, decorators, custom args handler, custom tasks) run verbatim."""

from __future__ import annotations

import asyncio


from flowcept import Flowcept


def tasks_of(workflow_id):
    return Flowcept.db.task_query({"workflow_id": workflow_id}, sort=[("started_at", 1)])


def workflow_of(workflow_id):
    found = Flowcept.db.workflow_query({"workflow_id": workflow_id})
    assert len(found) == 1
    return found[0]


class TestFlowceptObject:
    def test_context_manager(self, capsys):
        """The context-manager snippet captures one task and one workflow, linked, in the store and the file."""
        from flowcept import Flowcept, flowcept_task

        @flowcept_task(output_names="z")
        def add_one(x): return x + 1

        with Flowcept(workflow_name="my_workflow"):
            # all code inside belongs to the workflow
            z = add_one(7)
            print(z)

        assert capsys.readouterr().out == "8\n"
        wf_id = Flowcept.current_workflow_id
        wf = workflow_of(wf_id)
        assert wf["name"] == "my_workflow" and wf["status"] == "FINISHED"
        assert wf["started_at"] <= wf["ended_at"]
        (task,) = tasks_of(wf_id)
        assert task["activity_id"] == "add_one"
        assert task["used"] == {"x": 7} and task["generated"] == {"z": 8}
        assert task["status"] == "FINISHED" and task["type"] == "task"
        assert task["campaign_id"] == wf["campaign_id"]
        assert wf["started_at"] <= task["started_at"] <= task["ended_at"] <= wf["ended_at"]
        records = Flowcept.read_buffer_file()
        assert sorted(r["type"] for r in records) == ["task", "workflow"]

    def test_manual_start_stop(self, capsys):
        """Manual start/stop captures the same way; without output_names the result is arg_0."""
        from flowcept import Flowcept, flowcept_task

        @flowcept_task
        def double(x): return 2 * x

        flowcept = Flowcept(workflow_name="manual_example")
        flowcept.start()
        y = double(21)
        print("Result:", y)
        flowcept.stop()

        assert capsys.readouterr().out == "Result: 42\n"
        (task,) = tasks_of(flowcept.workflow_id)
        assert task["used"] == {"x": 21} and task["generated"] == {"arg_0": 42}
        assert workflow_of(flowcept.workflow_id)["name"] == "manual_example"

    def test_custom_args(self):
        """Workflow name, subtype, campaign and workflow_args land on the workflow record."""
        from flowcept import flowcept_task

        @flowcept_task
        def train_model():
            return {"loss": 0.5}

        with Flowcept(
            workflow_name="training_workflow",
            workflow_subtype="ml_workflow",
            campaign_id="experiment_42",
            start_persistence=True,
            interceptors=["instrumentation"],
            workflow_args={"epochs_list": [10, 100], "learning_rates": [0.1, 0.01, 0.001]}
        ) as f:
            train_model()

        wf = workflow_of(f.workflow_id)
        assert wf["name"] == "training_workflow" and wf["subtype"] == "ml_workflow"
        assert wf["campaign_id"] == "experiment_42"
        assert wf["used"] == {"epochs_list": [10, 100], "learning_rates": [0.1, 0.01, 0.001]}
        (task,) = tasks_of(f.workflow_id)
        assert task["campaign_id"] == "experiment_42" and task["generated"] == {"loss": 0.5}


class TestDecorators:
    def test_flowcept_main(self):
        """@flowcept makes each call one workflow that holds the tasks called inside it."""
        from flowcept import flowcept_task
        from flowcept.instrumentation.flowcept_decorator import flowcept

        @flowcept_task
        def step(i):
            return i * i

        @flowcept
        def main():
            # Your workflow code here
            return [step(i) for i in range(3)]

        assert main() == [0, 1, 4]
        wf_id = Flowcept.current_workflow_id
        assert workflow_of(wf_id)["name"] == "main"
        assert [t["generated"]["arg_0"] for t in tasks_of(wf_id)] == [0, 1, 4]

    def test_flowcept_main_with_args_async(self):
        """@flowcept(...) takes Flowcept arguments and wraps async functions."""
        from flowcept import flowcept_task
        from flowcept.instrumentation.flowcept_decorator import flowcept

        @flowcept_task
        async def fetch(n):
            await asyncio.sleep(0)
            return n + 1

        @flowcept(workflow_name="async_main", campaign_id="c1")
        async def main():
            return await fetch(1)

        assert asyncio.run(main()) == 2
        wf = workflow_of(Flowcept.current_workflow_id)
        assert wf["name"] == "async_main" and wf["campaign_id"] == "c1"
        (task,) = tasks_of(wf["workflow_id"])
        assert task["activity_id"] == "fetch" and task["generated"] == {"arg_0": 2}

    def test_simple_example(self):
        """mult_two(21) is stored as used {x: 21}, generated {y: 42}."""
        from flowcept import Flowcept, flowcept_task

        @flowcept_task(output_names="y")  # output_names is optional.
        def mult_two(x: int) -> int:
            return 2 * x

        with Flowcept(workflow_name="demo") as f:
            y = mult_two(21)
        assert y == 42
        (task,) = tasks_of(f.workflow_id)
        assert task["used"] == {"x": 21} and task["generated"] == {"y": 42}

    def test_advanced_usage(self):
        """Tuple outputs map to output_names; tags and custom_metadata are stored; outside Flowcept nothing is."""
        from flowcept import flowcept_task

        @flowcept_task(
            output_names=["y", "z"],  # map tuple outputs
            tags=["math", "demo"],  # attach tags
            custom_metadata={"owner": "devX"}  # arbitrary extra info
        )
        def compute(x):
            return x * 2, x * 3

        result = compute(5)
        assert result == (10, 15)
        with Flowcept(workflow_name="adv") as f:
            compute(5)
        (task,) = tasks_of(f.workflow_id)
        assert task["generated"] == {"y": 10, "z": 15}
        assert task["tags"] == ["math", "demo"]
        assert task["custom_metadata"] == {"owner": "devX"}
        assert Flowcept.db.task_query({"activity_id": "compute"}) == [task]

    def test_custom_args_handler(self):
        """The custom handler drops the big inputs; only x and result are recorded."""
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

        from flowcept import flowcept_task

        @flowcept_task(args_handler=custom_args_handler, output_names="result")
        def heavy_function(x, very_big_list, super_large_matrix):
            # Some expensive computation
            return x * 2

        with Flowcept(workflow_name="handler") as f:
            result = heavy_function(x=4, very_big_list=list(range(1000)), super_large_matrix=[[1] * 10] * 10)
        assert result == 8
        (task,) = tasks_of(f.workflow_id)
        assert task["used"] == {"x": 4} and task["generated"] == {"result": 8}

    def test_telemetry_flowcept_task(self):
        """@telemetry_flowcept_task records telemetry at start and end even with telemetry off in settings."""
        from flowcept import telemetry_flowcept_task

        @telemetry_flowcept_task
        def train_step(batch):
            # ... your training logic ...
            return 0.123

        with Flowcept(workflow_name="tel") as f:
            assert train_step([1, 2]) == 0.123
        (task,) = tasks_of(f.workflow_id)
        assert task["used"] == {"batch": [1, 2]} and task["generated"] == {"arg_0": 0.123}
        for key in ("telemetry_at_start", "telemetry_at_end"):
            assert task[key]["process"]["memory"]["rss"] > 0
        assert "telemetry_summary" in task

    def test_lightweight_flowcept_task(self):
        """@lightweight_flowcept_task records id, workflow, activity, used and generated only."""
        from flowcept import lightweight_flowcept_task

        @lightweight_flowcept_task
        def fast_op(x):
            return x + 1

        with Flowcept(workflow_name="light") as f:
            assert [fast_op(i) for i in range(3)] == [1, 2, 3]
        found = tasks_of(f.workflow_id)
        assert sorted((t["used"]["x"], t["generated"]["arg_0"]) for t in found) == [(0, 1), (1, 2), (2, 3)]
        assert {frozenset(t) for t in found} == {
            frozenset({"type", "task_id", "workflow_id", "activity_id", "used", "generated"})}


class TestCustomTasks:
    def test_custom_task_creation(self):
        """Context-managed and explicit FlowceptTask publish once each; data never reaches the JSONL file."""
        from flowcept import Flowcept
        from flowcept.instrumentation.task import FlowceptTask

        with Flowcept(workflow_name="custom_tasks") as f:
            # Context-managed publish
            with FlowceptTask(activity_id="download", used={"url": "https://..."}) as t:
                data = b"..."  # Some binary data
                t.end(data=data, generated={"bytes": len(data)})

            # Or publish explicitly
            task = FlowceptTask(activity_id="parse", used={"bytes": len(data)})
            task.end({"records": 42})
            task.send()  # publishes to MQ

        download, parse = tasks_of(f.workflow_id)
        assert download["activity_id"] == "download" and download["generated"] == {"bytes": 3}
        assert download["used"] == {"url": "https://..."} and download["status"] == "FINISHED"
        assert parse["generated"] == {"records": 42} and parse["used"] == {"bytes": 3}
        lines = [r for r in Flowcept.read_buffer_file(raw=True) if r["type"] == "task"]
        assert len(lines) == 2 and all("data" not in r for r in lines)

    def test_explicit_end_vs_send(self):
        """The end-vs-send snippet: four records (one workflow, three tasks) in the buffer file."""
        from time import sleep
        from flowcept import Flowcept, FlowceptTask
        from uuid import uuid4

        flowcept = Flowcept(
            start_persistence=False,
            save_workflow=True,
            workflow_name="MyFirstWorkflow",
        )
        flowcept.start()

        agent1 = uuid4()
        FlowceptTask(activity_id="super_func1", used={"x": 1}, agent_id=agent1, tags=["tag1"]).send()

        with FlowceptTask(activity_id="super_func2", used={"y": 1}, agent_id=agent1, tags=["tag2"]) as t2:
            sleep(0.5)
            t2.end(generated={"o": 3})

        t3 = FlowceptTask(activity_id="super_func3", used={"z": 1}, agent_id=agent1, tags=["tag3"])
        sleep(0.1)
        t3.end(generated={"w": 1})

        flowcept.stop()

        flowcept_messages = Flowcept.read_buffer_file()
        assert len(flowcept_messages) == 4

        by_activity = {m.get("activity_id"): m for m in flowcept_messages if m["type"] == "task"}
        f1, f2, f3 = by_activity["super_func1"], by_activity["super_func2"], by_activity["super_func3"]
        assert f1["ended_at"] == f1["started_at"] and "generated" not in f1
        assert f2["generated"] == {"o": 3} and f2["ended_at"] - f2["started_at"] >= 0.5
        assert f3["generated"] == {"w": 1} and f3["ended_at"] - f3["started_at"] >= 0.1
        assert {m["agent_id"] for m in (f1, f2, f3)} == {str(agent1)}
        assert [m["tags"] for m in (f1, f2, f3)] == [["tag1"], ["tag2"], ["tag3"]]
        assert all(m["status"] == "FINISHED" for m in (f1, f2, f3))
        (wf,) = [m for m in flowcept_messages if m["type"] == "workflow"]
        assert wf["name"] == "MyFirstWorkflow" and wf["status"] == "FINISHED" and "ended_at" in wf
        assert len(Flowcept.read_buffer_file(raw=True)) == 5  # the workflow's start and end messages
        assert len(tasks_of(flowcept.workflow_id)) == 3
