"""Core capture behaviour: concurrency, processes, isolation of workflows, and failures that never reach users."""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import sqlite3
import stat
import threading

import pytest

from flowcept import Flowcept, FlowceptTask, flowcept_task
from tests.conftest import write_settings


def tasks_of(workflow_id, **filters):
    return Flowcept.db.task_query({"workflow_id": workflow_id, **filters})


@flowcept_task
def square(x):
    return x * x


class TestConcurrency:
    def test_threads(self):
        """8 threads x 10,000 decorated calls give exactly 80,000 task records with unique ids."""
        def work(base):
            for i in range(10_000):
                square(base + i)

        with Flowcept(workflow_name="threads") as f:
            threads = [threading.Thread(target=work, args=(k * 10_000,)) for k in range(8)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        assert f.report.written == 80_002 and f.report.dropped == 0
        assert Flowcept.db.count("tasks", {"workflow_id": f.workflow_id}) == 80_000
        conn = sqlite3.connect(os.path.expanduser("~/.flowcept/flowcept.sqlite"))
        xs = sorted(x for (x,) in conn.execute("SELECT json_extract(doc, '$.used.x') FROM tasks"))
        assert xs == list(range(80_000))
        (n_ids,) = conn.execute("SELECT COUNT(DISTINCT json_extract(doc, '$.task_id')) FROM tasks").fetchone()
        assert n_ids == 80_000

    def test_processes_share_one_store(self, tmp_path):
        """4 processes, each with its own Flowcept, writing one SQLite store give exact counts."""
        ctx = mp.get_context("spawn")
        home = os.environ["HOME"]
        procs = [ctx.Process(target=_produce, args=(home, str(tmp_path), "wf-shared", k, 2_500)) for k in range(4)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(120)
            assert p.exitcode == 0
        assert Flowcept.db.count("tasks", {"workflow_id": "wf-shared"}) == 10_000
        for k in range(4):
            assert Flowcept.db.count("tasks", {"workflow_id": "wf-shared", "used.k": k}) == 2_500
        (wf,) = Flowcept.db.workflow_query({"workflow_id": "wf-shared"})
        assert wf["status"] == "FINISHED"

    def test_forked_children_inherit_scope(self):
        """Decorated calls in forked children are captured under the parent's workflow."""
        ctx = mp.get_context("fork")
        with Flowcept(workflow_name="forked") as f:
            procs = [ctx.Process(target=_fork_child, args=(k,)) for k in range(3)]
            for p in procs:
                p.start()
            for p in procs:
                p.join(60)
                assert p.exitcode == 0
        found = tasks_of(f.workflow_id)
        assert sorted(t["used"]["x"] for t in found) == [0, 1, 2, 100, 101, 102]


def _produce(home, cwd, workflow_id, k, n):
    os.environ["HOME"] = home
    os.chdir(cwd)

    @flowcept_task
    def work(k, i):
        return i

    with Flowcept(workflow_id=workflow_id, workflow_name="shared", delete_buffer_file=False):
        for i in range(n):
            work(k, i)


def _fork_child(k):
    square(k)
    square(100 + k)


class TestScopes:
    def test_two_threads_two_workflows(self):
        """Workflows started in two threads keep their tasks apart."""
        barrier = threading.Barrier(2)
        ids = {}

        def run(name):
            with Flowcept(workflow_name=name) as f:
                ids[name] = f.workflow_id
                barrier.wait()
                for i in range(200):
                    square(i)
                barrier.wait()

        threads = [threading.Thread(target=run, args=(n,)) for n in ("a", "b")]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(tasks_of(ids["a"])) == 200 and len(tasks_of(ids["b"])) == 200

    def test_nested_workflows(self):
        """A nested workflow gets the tasks called inside it; the outer one gets the rest."""
        with Flowcept(workflow_name="outer") as outer:
            square(1)
            with Flowcept(workflow_name="inner") as inner:
                square(2)
                assert Flowcept.current_workflow_id == inner.workflow_id
            square(3)
            assert Flowcept.current_workflow_id == outer.workflow_id
        assert sorted(t["used"]["x"] for t in tasks_of(outer.workflow_id)) == [1, 3]
        assert [t["used"]["x"] for t in tasks_of(inner.workflow_id)] == [2]

    def test_asyncio_tasks(self):
        """asyncio tasks running different workflows keep their tasks apart."""
        @flowcept_task
        async def step(x):
            await asyncio.sleep(0.001)
            return x

        async def one(name, xs):
            with Flowcept(workflow_name=name) as f:
                for x in xs:
                    await step(x)
                return f.workflow_id

        async def main():
            return await asyncio.gather(one("a", [1, 2, 3]), one("b", [10, 20]))

        wa, wb = asyncio.run(main())
        assert sorted(t["used"]["x"] for t in tasks_of(wa)) == [1, 2, 3]
        assert sorted(t["used"]["x"] for t in tasks_of(wb)) == [10, 20]

    def test_parent_links(self):
        """A task called inside another task records it as parent; FlowceptTask blocks nest too."""
        @flowcept_task
        def outer(x):
            return square(x) + 1

        with Flowcept() as f:
            outer(3)
            with FlowceptTask(activity_id="block") as t:
                square(4)
                t.end()
        by_act = {}
        for task in tasks_of(f.workflow_id):
            by_act.setdefault(task["activity_id"], []).append(task)
        parent = by_act["outer"][0]
        children = {t["used"]["x"]: t for t in by_act["square"]}
        assert children[3]["parent_task_id"] == parent["task_id"]
        assert children[4]["parent_task_id"] == by_act["block"][0]["task_id"]
        assert "parent_task_id" not in parent

    def test_no_flowcept_running(self, caplog):
        """Without a running Flowcept a decorated call runs unchanged, records nothing, warns once."""
        @flowcept_task
        def lonely(x):
            return x + 1

        assert [lonely(i) for i in range(3)] == [1, 2, 3]
        warnings = [r for r in caplog.records if "lonely" in r.getMessage()]
        assert len(warnings) == 1 and "with Flowcept" in warnings[0].getMessage()
        assert not os.path.exists("flowcept_buffer.jsonl")


class TestCaptureBehaviour:
    def test_exception_recorded_and_reraised(self):
        """An exception is recorded as ERROR with its message, and the same exception object propagates."""
        err = ValueError("bad input")

        @flowcept_task
        def fails(x):
            raise err

        with Flowcept() as f:
            with pytest.raises(ValueError) as info:
                fails(1)
        assert info.value is err and info.value.__cause__ is None and info.value.__context__ is None
        (task,) = tasks_of(f.workflow_id)
        assert task["status"] == "ERROR" and task["stderr"] == "bad input" and "generated" not in task

    def test_with_block_error_marks_workflow(self):
        """A with-block that raises leaves the workflow ERROR; FlowceptTask blocks record ERROR too."""
        with pytest.raises(KeyError):
            with Flowcept(workflow_name="broken") as f:
                with FlowceptTask(activity_id="inner"):
                    raise KeyError("k")
        (wf,) = Flowcept.db.workflow_query({"workflow_id": f.workflow_id})
        assert wf["status"] == "ERROR"
        (task,) = tasks_of(f.workflow_id)
        assert task["status"] == "ERROR" and task["stderr"] == "'k'"

    def test_namespace_and_conversions(self):
        """Namespaces are flattened; non-JSON values follow the documented conversions."""
        class WithToDict:
            def to_dict(self):
                return {"a": 1}

        class Plain:
            pass

        class Registered:
            def __init__(self):
                self.v = 5

        from flowcept import register_dict_class
        register_dict_class(Registered)

        @flowcept_task
        def run(args, obj, plain, reg):
            return {"out": {1, 2}}

        plain = Plain()
        with Flowcept() as f:
            run(argparse.Namespace(lr=0.1, epochs=3), WithToDict(), plain, Registered())
        (task,) = tasks_of(f.workflow_id)
        assert task["used"] == {"lr": 0.1, "epochs": 3, "obj": {"a": 1},
                                "plain": f"Plain_instance_id_{id(plain)}", "reg": {"v": 5}}
        assert task["generated"] == {"out": [1, 2]}

    def test_failing_to_dict_never_breaks_user_code(self):
        """A to_dict that raises: the user's result is unchanged, the value becomes a placeholder, errors counted."""
        class Bad:
            def to_dict(self):
                raise RuntimeError("nope")

        @flowcept_task
        def takes(b):
            return 7

        bad = Bad()
        with Flowcept() as f:
            assert takes(bad) == 7
        assert f.report.capture_errors == 1 and f.report.dropped == 0
        (task,) = tasks_of(f.workflow_id)
        assert task["used"] == {"b": f"Bad_instance_id_{id(bad)}"}

    def test_raising_args_handler(self):
        """An args_handler that raises is reported; the call still returns its value and is recorded."""
        def handler(*args, **kwargs):
            raise RuntimeError("handler broke")

        @flowcept_task(args_handler=handler)
        def f1(x):
            return x

        with Flowcept() as f:
            assert f1(3) == 3
        (task,) = tasks_of(f.workflow_id)
        assert task["used"] == {} and f.report.capture_errors >= 1

    def test_output_names(self):
        """output_names: a string name never zips characters; lists map tuples; dicts pass through."""
        @flowcept_task(output_names="ab")
        def pair():
            return 1, 2

        @flowcept_task(output_names=["a", "b"])
        def mismatched():
            return 1, 2, 3

        @flowcept_task
        def as_dict():
            return {"k": 1}

        with Flowcept() as f:
            pair(), mismatched(), as_dict()
        got = {t["activity_id"]: t["generated"] for t in tasks_of(f.workflow_id)}
        assert got == {"pair": {"ab": [1, 2]}, "mismatched": {"arg_0": [1, 2, 3]}, "as_dict": {"k": 1}}

    def test_workflow_and_campaign_overrides(self):
        """workflow_id/campaign_id given to the decorator or as a call input route the task."""
        @flowcept_task(workflow_id="wf-fixed", campaign_id="camp-fixed")
        def fixed():
            return 1

        @flowcept_task
        def routed(x, workflow_id=None):
            return x

        with Flowcept() as f:
            fixed()
            routed(1, workflow_id="wf-routed")
            routed(2)
        assert Flowcept.db.task_query({"workflow_id": "wf-fixed"})[0]["campaign_id"] == "camp-fixed"
        assert Flowcept.db.task_query({"workflow_id": "wf-routed"})[0]["used"]["x"] == 1
        assert [t["used"]["x"] for t in tasks_of(f.workflow_id)] == [2]

    def test_flowcept_task_variants(self):
        """FlowceptTask: auto-end from constructor fields, UUID agent ids, _task access, parent ids."""
        import uuid

        agent = uuid.uuid4()
        with Flowcept() as f:
            FlowceptTask(activity_id="auto", used={"a": 1}, generated={"b": 2})
            FlowceptTask(activity_id="auto_status", status="ERROR", agent_id=agent)
            t = FlowceptTask(activity_id="via_task", parent_task_id="p-1")
            t._task.custom_metadata = {"k": "v"}
            t.end(stderr="boom")
            t.end(generated={"ignored": True})
        got = {x["activity_id"]: x for x in tasks_of(f.workflow_id)}
        assert got["auto"]["status"] == "FINISHED" and got["auto"]["generated"] == {"b": 2}
        assert got["auto_status"]["status"] == "ERROR" and got["auto_status"]["agent_id"] == str(agent)
        v = got["via_task"]
        assert v["status"] == "ERROR" and v["stderr"] == "boom" and v["parent_task_id"] == "p-1"
        assert v["custom_metadata"] == {"k": "v"} and "generated" not in v

    def test_flowcept_task_records_exact(self):
        """The usual task (an activity and nothing else) and the tasks with other fixed fields give exact records."""
        from flowcept._runtime import hostname
        from flowcept.capture.task import FlowceptTask as Task

        with Flowcept() as f:
            a = Task(activity_id="plain", used={"x": 1})
            a.end(generated={"y": 2})
            b = Task(used={"x": 2}, hostname="h1", subtype="s", tags="t")
            b.end(status="FINISHED")
            c = Task(activity_id="meta", custom_metadata={"k": 1})
            c.send()
            d = Task(activity_id="")  # an empty activity is left out, as static_fields does
            d.send()
        host = hostname()
        common = {"type": "task", "workflow_id": f.workflow_id, "campaign_id": f.campaign_id}
        got = {x["task_id"]: x for x in tasks_of(f.workflow_id)}
        ra, rb, rc = got[a.get_id()], got[b.get_id()], got[c.get_id()]
        for record in (ra, rb, rc):
            assert record["ended_at"] >= record["started_at"] > 0
        times = ("started_at", "ended_at")
        assert {k: v for k, v in ra.items() if k not in times} == {
            **common, "task_id": a.get_id(), "activity_id": "plain", "hostname": host, "used": {"x": 1},
            "generated": {"y": 2}, "status": "FINISHED"}
        assert {k: v for k, v in rb.items() if k not in times} == {
            **common, "task_id": b.get_id(), "hostname": "h1", "subtype": "s", "tags": ["t"], "used": {"x": 2},
            "status": "FINISHED"}
        assert {k: v for k, v in rc.items() if k not in times} == {
            **common, "task_id": c.get_id(), "activity_id": "meta", "hostname": host,
            "custom_metadata": {"k": 1}, "status": "FINISHED"}
        assert {k: v for k, v in got[d.get_id()].items() if k not in times} == {
            **common, "task_id": d.get_id(), "hostname": host, "status": "FINISHED"}

    def test_flowcept_task_without_flowcept(self, caplog):
        """A FlowceptTask created with no Flowcept running is inert."""
        t = FlowceptTask(activity_id="x", used={"a": 1})
        t.end(generated={"b": 1})
        t.send()
        assert not os.path.exists("flowcept_buffer.jsonl")


class TestFailuresAreReported:
    def test_unwritable_buffer_path(self, tmp_path, monkeypatch):
        """A buffer path that cannot be written (a file where its folder should be; unlike permissions, this holds
        for root too): results unchanged, records still stored, the failure counted."""
        (tmp_path / "afile").write_text("x")
        write_settings(tmp_path, f"project:\n  dump_buffer:\n    path: {tmp_path}/afile/buf.jsonl\n", monkeypatch)
        with Flowcept() as f:
            assert square(6) == 36
        assert f.report.sink_failures == {"buffer file": 3} and f.report.dropped == 0
        assert len(tasks_of(f.workflow_id)) == 1

    def test_read_only_store(self, tmp_path, monkeypatch):
        """A store that cannot be written: the user's results are unchanged, the loss is counted in stop()."""
        db = tmp_path / "ro" / "store.sqlite"
        db.parent.mkdir()
        sqlite3.connect(db).close()
        db.chmod(stat.S_IRUSR)
        monkeypatch.setenv("FLOWCEPT_SQLITE_PATH", str(db))
        from flowcept.settings import reload_settings
        reload_settings()
        if os.access(db, os.W_OK):
            # root ignores file modes: make the path unusable another way (a directory where the file should be)
            db.chmod(stat.S_IRUSR | stat.S_IWUSR)
            db.unlink()
            db.mkdir()
        with Flowcept() as f:
            assert [square(i) for i in range(3)] == [0, 1, 4]
        assert f.report.dropped == 5 and f.report.written == 0
        assert len(Flowcept.read_buffer_file()) == 4  # the JSONL file still has everything

    def test_bad_settings_fail_at_start(self, tmp_path, monkeypatch):
        """A typo in the settings file fails at start with the key and the file named."""
        from flowcept.errors import ConfigError
        from flowcept.settings import reload_settings

        path = tmp_path / "settings.yaml"
        path.write_text("project:\n  db_flush_mod: online\n")
        monkeypatch.setenv("FLOWCEPT_SETTINGS_PATH", str(path))
        with pytest.raises(ConfigError) as info:
            reload_settings()
        assert info.value.key == "project.db_flush_mod" and str(path) in str(info.value)
        assert "db_flush_mode" in str(info.value)

    def test_unknown_argument(self):
        """An unknown Flowcept argument is a TypeError naming it; save_workflows is a deprecated alias."""
        with pytest.raises(TypeError, match="'workflow_nam'"):
            Flowcept(workflow_nam="x")
        with pytest.warns(DeprecationWarning, match="save_workflow"):
            f = Flowcept(save_workflows=False)
        assert f._save_workflow is False

    def test_offline_mode_writes_no_store(self, tmp_path, monkeypatch):
        """db_flush_mode: offline keeps records in the JSONL file only."""
        write_settings(tmp_path, "project:\n  db_flush_mode: offline\n", monkeypatch)
        with Flowcept() as f:
            square(2)
        assert not os.path.exists(os.path.expanduser("~/.flowcept/flowcept.sqlite"))
        assert [r["type"] for r in Flowcept.read_buffer_file()] == ["workflow", "task"]
        assert f.report.written == 3

    def test_instrumentation_disabled(self, tmp_path, monkeypatch):
        """instrumentation.enabled: false makes decorators and tasks pass through and Flowcept a no-op."""
        write_settings(tmp_path, "instrumentation:\n  enabled: false\n", monkeypatch)

        @flowcept_task
        def inc(x):
            return x + 1

        with Flowcept() as f:
            assert inc(1) == 2
            FlowceptTask(activity_id="t").end()
        assert f.enabled is False
        assert not os.path.exists("flowcept_buffer.jsonl")


class TestBufferFile:
    def test_corrupt_lines_skipped(self, tmp_path, caplog):
        """Torn or corrupt lines are skipped with a warning that counts them."""
        path = tmp_path / "buf.jsonl"
        path.write_bytes(b'{"type":"task","task_id":"a","used":{"x":1}}\n{"type":"ta\nnot json\n\n'
                         b'{"type":"task","task_id":"a","status":"FINISHED","generated":{"y":2}}\n')
        records = Flowcept.read_buffer_file(str(path))
        assert records == [{"type": "task", "task_id": "a", "used": {"x": 1}, "status": "FINISHED",
                            "generated": {"y": 2}}]
        assert "skipped 2 corrupt" in caplog.text
        assert len(Flowcept.read_buffer_file(str(path), raw=True)) == 2

    def test_missing_file(self, tmp_path):
        """A missing buffer file is a FileNotFoundError."""
        with pytest.raises(FileNotFoundError):
            Flowcept.read_buffer_file(str(tmp_path / "nope.jsonl"))

    def test_consolidate_and_dataframe(self, tmp_path, monkeypatch):
        """Per-process files (append_id_to_path) consolidate into one; return_df gives dotted columns."""
        write_settings(tmp_path, "project:\n  dump_buffer:\n    append_id_to_path: true\n"
                                 "    append_workflow_id_to_path: true\n", monkeypatch)
        with Flowcept(workflow_id="wf-c") as f:
            square(3)
        assert f.report.buffer_file.startswith(str(tmp_path / "flowcept_buffer_wf-c_"))
        df = Flowcept.read_buffer_file(consolidate=True, workflow_id="wf-c", return_df=True, normalize_df=True)
        assert sorted(df["type"]) == ["task", "workflow"]
        assert df.loc[df["type"] == "task", "used.x"].tolist() == [3]
        assert os.listdir(tmp_path).count("flowcept_buffer_wf-c.jsonl") == 1

    def test_get_buffer_and_dump(self, tmp_path):
        """get_buffer returns this workflow's merged records; dump_buffer writes them to a file."""
        with Flowcept(workflow_name="gb") as f:
            square(1)
            live = f.get_buffer()
            assert sorted(r["type"] for r in live) == ["task", "workflow"]
        out = f.dump_buffer(str(tmp_path / "dump.jsonl"))
        dumped = Flowcept.read_buffer_file(out)
        assert {r["type"]: r.get("status") for r in dumped} == {"workflow": "FINISHED", "task": "FINISHED"}
        df = f.get_buffer(return_df=True)
        assert len(df) == 2


class TestQueryAPI:
    def test_db_api_round_trip(self):
        """Flowcept.db: typed workflow objects, current workflow's tasks, projection/sort/limit, DataFrames."""
        from flowcept import WorkflowObject
        from flowcept.commons.vocabulary import Status

        with Flowcept(workflow_name="q", workflow_args={"a": 1}) as f:
            for i in range(4):
                square(i)
            live = Flowcept.db.get_tasks_from_current_workflow()
        assert len(live) == 4
        wf = Flowcept.db.get_workflow_object(f.workflow_id)
        assert isinstance(wf, WorkflowObject) and wf.name == "q" and wf.used == {"a": 1}
        assert wf.status is Status.FINISHED
        assert Flowcept.db.get_workflow_object("nope") is None
        top = Flowcept.db.query({"workflow_id": f.workflow_id}, projection=["used.x"], sort=[("used.x", -1)],
                                limit=2)
        assert top == [{"used": {"x": 3}}, {"used": {"x": 2}}]
        assert Flowcept.db.query({"name": "q"}, collection="workflows")[0]["workflow_id"] == f.workflow_id
        df = Flowcept.db.to_df(filter={"workflow_id": f.workflow_id})
        assert sorted(df["used.x"]) == [0, 1, 2, 3]


class TestQAFixes:
    def test_user_exception_not_masked_by_stop_failure(self, tmp_path, monkeypatch):
        """If stop() fails while the with-block raises, the user's exception still propagates unchanged."""
        write_settings(tmp_path, "mq:\n  enabled: true\n  port: 1\n  reconnect_deadline_secs: 0.2\n"
                                 "buffer:\n  stop_timeout_secs: 1\n", monkeypatch)
        with pytest.raises(ValueError, match="mine"):
            with Flowcept(start_persistence=False):
                square(1)
                raise ValueError("mine")

    def test_instrumentation_disabled_wins_over_arguments(self, tmp_path, monkeypatch):
        """instrumentation.enabled: false makes capture a pass-through even with interceptors=['instrumentation']."""
        write_settings(tmp_path, "instrumentation:\n  enabled: false\n", monkeypatch)
        with Flowcept(interceptors=["instrumentation"]) as f:
            assert square(3) == 9
            FlowceptTask(activity_id="t").end()
        assert f.enabled is False and not os.path.exists("flowcept_buffer.jsonl")

    def test_args_handler_gets_named_arguments(self):
        """A custom args_handler receives the call's arguments bound to parameter names, even positional ones."""
        def handler(*args, **kwargs):
            assert not args
            return {k: v for k, v in kwargs.items() if k != "big"}

        @flowcept_task(args_handler=handler, output_names="r")
        def work(x, big, scale=2):
            return x * scale

        with Flowcept() as f:
            work(3, [0] * 100)
        (task,) = tasks_of(f.workflow_id)
        assert task["used"] == {"x": 3, "scale": 2} and task["generated"] == {"r": 6}

    def test_lightweight_records_errors(self):
        """@lightweight_flowcept_task records a raising call as ERROR and re-raises it unchanged."""
        from flowcept import lightweight_flowcept_task

        @lightweight_flowcept_task
        def boom(x):
            raise KeyError(x)

        with Flowcept() as f:
            with pytest.raises(KeyError):
                boom(5)
        (task,) = tasks_of(f.workflow_id)
        assert task["status"] == "ERROR" and task["stderr"] == "5" and task["used"] == {"x": 5}

    def test_partial_and_callable_objects(self):
        """functools.partial and callable objects can be decorated; the activity is the underlying name."""
        import functools

        def scale(x, k):
            return x * k

        triple = flowcept_task(functools.partial(scale, k=3))
        with Flowcept() as f:
            assert triple(2) == 6
        (task,) = tasks_of(f.workflow_id)
        assert task["activity_id"] == "scale" and task["used"] == {"x": 2, "k": 3}

    def test_adapter_argument_hint(self):
        """An adapter argument without its interceptor says which interceptor to add."""
        with pytest.raises(TypeError, match=r"interceptors=\['instrumentation', 'dask'\]"):
            Flowcept(dask_client=object())


class TestSnapshots:
    def test_values_recorded_as_at_call_time(self):
        """Inputs and outputs are recorded as they were at call time, whatever the program does to them later."""
        import numpy as np

        from flowcept import FlowceptLoop

        @flowcept_task
        def f(state, arr):
            return state

        with Flowcept() as fc:
            s = {"epoch": 0, "hist": [0]}
            buf = np.zeros(3)
            for e in range(3):
                s["epoch"] = e
                s["hist"].append(e)
                buf[:] = e
                f(s, buf)
            s.clear()
            metrics = {}
            loop = FlowceptLoop(range(3), loop_name="L")
            for i in loop:
                metrics["loss"] = i / 10
                loop.end_iter(metrics)
            t = FlowceptTask(activity_id="t", used=metrics)
            t.end(generated=metrics)
            metrics["loss"] = 99
        got = sorted(Flowcept.db.task_query({"workflow_id": fc.workflow_id, "activity_id": "f"}),
                     key=lambda t: t["used"]["state"]["epoch"])
        assert [t["used"]["state"] for t in got] == [{"epoch": 0, "hist": [0, 0]}, {"epoch": 1, "hist": [0, 0, 1]},
                                                     {"epoch": 2, "hist": [0, 0, 1, 2]}]
        assert [t["used"]["arr"] for t in got] == [[0.0] * 3, [1.0] * 3, [2.0] * 3]
        assert [t["generated"]["epoch"] for t in got] == [0, 1, 2]
        its = sorted(Flowcept.db.task_query({"activity_id": "L_iteration"}), key=lambda t: t["used"]["i"])
        assert [t["generated"]["loss"] for t in its] == [0.0, 0.1, 0.2]
        (tt,) = Flowcept.db.task_query({"activity_id": "t"})
        assert tt["used"] == {"loss": 0.2} and tt["generated"] == {"loss": 0.2}

    def test_large_arrays_are_summarized(self):
        """Arrays past 1,000 elements are stored as a shape/dtype summary, not as data."""
        import numpy as np

        @flowcept_task
        def g(a):
            return a.sum()

        with Flowcept() as fc:
            g(np.ones((100, 50), dtype=np.float32))
        (task,) = tasks_of(fc.workflow_id)
        assert task["used"] == {"a": {"type": "ndarray", "shape": [100, 50], "dtype": "float32"}}
        assert task["generated"] == {"arg_0": 5000.0}


def _holding_worker(home, cwd, started, release):
    os.environ["HOME"] = home
    os.chdir(cwd)
    with Flowcept(workflow_id="wf-holder"):
        square(1)
        Flowcept.db.count("tasks")  # flushed: the task line is in the buffer file
        started.set()
        release.wait(60)
        square(2)


def test_running_writer_keeps_its_buffer_file(tmp_path):
    """Flowcept() deletes the previous buffer file, but never one a running Flowcept elsewhere is writing."""
    ctx = mp.get_context("spawn")
    started, release = ctx.Event(), ctx.Event()
    proc = ctx.Process(target=_holding_worker, args=(os.environ["HOME"], str(tmp_path), started, release))
    proc.start()
    try:
        assert started.wait(60)
        Flowcept()  # the default: delete the previous buffer file
        assert (tmp_path / "flowcept_buffer.jsonl").exists()
    finally:
        release.set()
        proc.join(60)
    assert proc.exitcode == 0
    records = Flowcept.read_buffer_file()
    assert sorted(r["used"]["x"] for r in records if r["type"] == "task") == [1, 2]
    Flowcept()  # nobody writes it now: deleted
    assert not (tmp_path / "flowcept_buffer.jsonl").exists()


class TestSettingsActedOn:
    def test_log_file_and_enrichment(self, tmp_path, monkeypatch):
        """log.* writes the configured log file; sys_metadata, extra_metadata and enrich_messages reach the
        workflow record (secrets redacted)."""
        write_settings(tmp_path, f"log:\n  log_path: {tmp_path}/fc.log\n  log_file_level: info\n"
                                 "sys_metadata:\n  environment_id: cluster-a\n"
                                 "extra_metadata:\n  project_code: X1\n"
                                 "project:\n  enrich_messages: true\n"
                                 "mq:\n  password: hunter2\n", monkeypatch)
        import logging

        with Flowcept(workflow_name="enriched") as f:
            logging.getLogger("flowcept").info("hello from the test")
        (wf,) = Flowcept.db.workflow_query({"workflow_id": f.workflow_id})
        assert wf["environment_id"] == "cluster-a" and wf["extra_metadata"]["project_code"] == "X1"
        assert wf["sys_name"] == os.uname().sysname and wf["extra_metadata"]["node_name"]
        assert wf["flowcept_settings"]["mq"]["password"] == "REDACTED"
        assert "hello from the test" in (tmp_path / "fc.log").read_text()

    def test_joining_a_workflow_invents_no_campaign(self):
        """A Flowcept given an existing workflow_id (and no campaign) stamps no campaign on its tasks."""
        with Flowcept(workflow_id="wf-joined", save_workflow=False):
            square(2)
        (task,) = Flowcept.db.task_query({"workflow_id": "wf-joined"})
        assert "campaign_id" not in task


class TestReviewFixes:
    def test_parameters_named_like_builtins(self):
        """Functions with parameters named type/len/dict... are captured and run unchanged."""
        from flowcept import lightweight_flowcept_task

        @flowcept_task
        def cast(type, x):
            return {"float": float}[type](x)

        @lightweight_flowcept_task
        def size(len):
            return len * 2

        with Flowcept() as f:
            assert cast("float", "1.5") == 1.5 and size(3) == 6
        assert sorted(str(t["used"]) for t in tasks_of(f.workflow_id)) == ["{'len': 3}", "{'type': 'float', 'x': '1.5'}"]

    def test_cyclic_and_array_inputs(self):
        """A cyclic list becomes a placeholder; a record holding a numpy array in a top-level field still encodes."""
        import numpy as np

        @flowcept_task
        def takes(v):
            return 1

        cyc = [1]
        cyc.append(cyc)
        with Flowcept() as f:
            assert takes(cyc) == 1
            FlowceptTask(activity_id="arr", data=np.arange(3)).end()
        got = {t["activity_id"]: t for t in tasks_of(f.workflow_id)}
        assert got["takes"]["used"]["v"].startswith("list_instance_id_") and f.report.dropped == 0
        assert got["arr"]["data"] == [0, 1, 2]

    def test_lightweight_records_inputs_as_passed(self):
        """The lightweight decorator records inputs as they were passed, even if the function mutates them."""
        from flowcept import lightweight_flowcept_task

        @lightweight_flowcept_task
        def grow(xs):
            xs.append(99)
            return len(xs)

        with Flowcept() as f:
            grow([1])
        (task,) = tasks_of(f.workflow_id)
        assert task["used"] == {"xs": [1]} and task["generated"] == {"arg_0": 2}

    def test_task_ended_after_stop_is_reported(self):
        """A FlowceptTask ended after its Flowcept stopped is not silently lost: it is reported."""
        from flowcept._internal_errors import capture_error_count

        with Flowcept():
            t = FlowceptTask(activity_id="late")
        before = capture_error_count()
        t.end()
        assert capture_error_count() == before + 1


class WeirdError(Exception):
    """An exception whose message cannot be made."""

    def __str__(self):
        raise RuntimeError("no str")


def _inject_connection(func):
    """A decorator of the kind that changes the call: it passes a first argument of its own (functools.wraps)."""
    import functools

    @functools.wraps(func)
    def inner(*args, **kwargs):
        return func("conn", *args, **kwargs)
    return inner


def _default_y(func):
    """A decorator that supplies ``y`` when the caller does not (functools.wraps)."""
    import functools

    @functools.wraps(func)
    def inner(x, **kwargs):
        kwargs.setdefault("y", "from-decorator")
        return func(x, **kwargs)
    return inner


class TestDecoratorReviewFixes:
    def test_over_a_decorator_that_changes_the_call(self):
        """@flowcept_task above a functools.wraps decorator that adds or fills arguments calls it as it is called:
        the same results as without capture, each call recorded."""
        import os as os_module
        from unittest import mock

        @flowcept_task
        @_inject_connection
        def query(conn, sql):
            return [conn, sql]

        @flowcept_task
        @mock.patch("os.getcwd", return_value="/patched")
        def patched(x, m):
            return [x, os_module.getcwd()]

        @flowcept_task
        @_default_y
        def filled(x, y="own"):
            return y

        with Flowcept() as f:
            assert query("select 1") == ["conn", "select 1"]
            assert patched(1) == [1, "/patched"]
            assert filled(1) == "from-decorator" and filled(1, y="given") == "given"
        got = sorted((t["activity_id"], t["status"], t["generated"]["arg_0"]) for t in tasks_of(f.workflow_id))
        assert got == [("filled", "FINISHED", "from-decorator"), ("filled", "FINISHED", "given"),
                       ("patched", "FINISHED", [1, "/patched"]), ("query", "FINISHED", ["conn", "select 1"])]

    def test_an_exception_whose_message_fails_is_still_recorded(self):
        """The task that raised is recorded ERROR with the class name, and the exception reaches the caller
        unchanged, from both decorators and from a FlowceptTask block."""
        from flowcept import lightweight_flowcept_task

        @flowcept_task
        def full():
            raise WeirdError()

        @lightweight_flowcept_task
        def light():
            raise WeirdError()

        raised = []
        with Flowcept() as f:
            for call in (full, light):
                with pytest.raises(WeirdError) as info:
                    call()
                raised.append(info.value)
            with pytest.raises(WeirdError):
                with FlowceptTask(activity_id="block"):
                    raise WeirdError()
        got = sorted((t["activity_id"], t["status"], t["stderr"]) for t in tasks_of(f.workflow_id))
        assert got == [("block", "ERROR", "WeirdError"), ("full", "ERROR", "WeirdError"),
                       ("light", "ERROR", "WeirdError")]
        assert all(type(e) is WeirdError for e in raised)

    def test_integers_beyond_64_bits_are_stored_as_text(self):
        """A huge integer input keeps its task: decimal text, or hexadecimal text past Python's decimal conversion
        limit; each counts a capture warning."""
        from flowcept._internal_errors import capture_warning_count

        @flowcept_task
        def take(x):
            return 1

        huge = 10 ** 5000
        before = capture_warning_count()
        with Flowcept() as f:
            take(2 ** 70)
            take(huge)
            take(3)
        got = sorted((str(t["used"]["x"]) for t in tasks_of(f.workflow_id)), key=len)
        assert got == ["3", "1180591620717411303424", hex(huge)]
        assert capture_warning_count() - before == 2

    def test_workflow_and_campaign_ids_through_kwargs_route_the_task(self):
        """workflow_id / campaign_id passed as keyword arguments that **kwargs takes route the task, as a parameter
        of that name does."""

        @flowcept_task
        def run(x, **options):
            return x

        with Flowcept() as f:
            run(1, workflow_id="wf-kwargs", campaign_id="camp-kwargs")
            run(2)
        (routed,) = Flowcept.db.task_query({"workflow_id": "wf-kwargs"})
        assert routed["campaign_id"] == "camp-kwargs"
        assert routed["used"] == {"x": 1, "options": {"workflow_id": "wf-kwargs", "campaign_id": "camp-kwargs"}}
        (plain,) = tasks_of(f.workflow_id)
        assert plain["used"] == {"x": 2, "options": {}} and plain["campaign_id"] == f.campaign_id


class TestPipelineReviewFixes:
    def test_untyped_records_are_stored_as_their_fields_say(self):
        """A record emitted without "type" is stored as the kind its fields make it (records.kind_of), not counted
        as written and lost; the caller's dict is left as it was."""
        from flowcept.capture.emit import emit

        untyped = {"task_id": "untyped-1", "activity_id": "external", "used": {"x": 1}}
        with Flowcept() as f:
            assert emit(untyped) is True
            with pytest.raises(TypeError, match=r"emit\(\) takes a record dict .* not list"):
                emit(["not", "a", "record"])
        (task,) = Flowcept.db.task_query({"task_id": "untyped-1"})
        assert task == {"type": "task", "task_id": "untyped-1", "activity_id": "external", "used": {"x": 1},
                        "workflow_id": f.workflow_id, "campaign_id": f.campaign_id}
        assert "type" not in untyped

    def test_strings_that_are_not_utf8_keep_their_task(self):
        """A file name os.listdir decoded from bytes that are not UTF-8 (lone surrogates), as a value or as a key,
        is stored with each surrogate as its escape; the task is kept and a capture warning counted."""
        import os as os_module

        from flowcept._internal_errors import capture_warning_count

        @flowcept_task
        def open_file(name, meta):
            return 1

        name = os_module.fsdecode(b"file\xff.txt")
        before = capture_warning_count()
        with Flowcept() as f:
            open_file(name, {"k\udcff": 1})
            open_file("plain.txt", {})
        got = sorted((t["used"]["name"], t["used"]["meta"]) for t in tasks_of(f.workflow_id))
        assert got == [("file\\udcff.txt", {"k\\udcff": 1}), ("plain.txt", {})]
        assert capture_warning_count() - before >= 1

    def test_a_forked_child_leaving_the_block_does_not_end_the_parents_workflow(self, tmp_path):
        """A child forked inside `with Flowcept()` that exits with sys.exit (unwinding the block) has its tasks
        recorded, and the workflow stays RUNNING until the parent's block ends (then FINISHED)."""
        import subprocess
        import sys
        import textwrap

        script = tmp_path / "fork_child.py"
        script.write_text(textwrap.dedent("""
            import os, sys
            from flowcept import Flowcept, flowcept_task

            @flowcept_task
            def f(x):
                return x + 1

            with Flowcept(workflow_name="forked-exit") as fc:
                pid = os.fork()
                if pid == 0:
                    f(1)
                    sys.exit(0)
                _, status = os.waitpid(pid, 0)
                assert status == 0, status
                (wf,) = Flowcept.db.workflow_query({"workflow_id": fc.workflow_id})
                print("during:", wf["status"], "ended_at" in wf)
            (wf,) = Flowcept.db.workflow_query({"workflow_id": fc.workflow_id})
            print("after:", wf["status"])
            print("tasks:", [t["used"] for t in Flowcept.db.task_query({"workflow_id": fc.workflow_id})])
        """))
        env = {**os.environ, "HOME": str(tmp_path)}
        done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, done.stderr
        assert done.stdout.splitlines() == ["during: RUNNING False", "after: FINISHED", "tasks: [{'x': 1}]"]

    def test_two_threads_stopping_one_controller_leave_the_others_pipeline(self, tmp_path):
        """stop() called by two threads at once on one controller releases the shared pipeline once: a workflow
        still running beside it keeps storing. (A subprocess: the thread switch interval is set to its minimum there
        so that the two stops interleave.)"""
        import subprocess
        import sys
        import textwrap

        script = tmp_path / "racing_stops.py"
        script.write_text(textwrap.dedent("""
            import sys, threading
            sys.setswitchinterval(1e-6)
            from flowcept import Flowcept, flowcept_task

            @flowcept_task
            def f(x):
                return x

            outer = Flowcept(workflow_name="outer")
            outer.start()
            for k in range(300):
                inner = Flowcept(workflow_name="inner", delete_buffer_file=False)
                inner.start()
                f(k)
                barrier = threading.Barrier(2)

                def stop():
                    barrier.wait()
                    inner.stop()
                threads = [threading.Thread(target=stop) for _ in range(2)]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
            for i in range(1000):
                f(i)
            report = outer.stop()
            print(report.dropped, len(Flowcept.db.task_query({"workflow_id": outer.workflow_id})))
        """))
        env = {**os.environ, "HOME": str(tmp_path)}
        done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, done.stderr
        assert done.stdout.split() == ["0", "1000"]

    def test_emitted_records_keep_nan_and_infinities_as_strings(self):
        """Records handed to emit() (adapters' records) store NaN and infinities as capture does, not as null; the
        caller's dict is copied, not changed."""
        import math

        from flowcept.capture.emit import emit

        record = {"type": "task", "task_id": "emit-nan", "used": {"v": math.nan, "deep": [math.inf]},
                  "generated": {"loss": -math.inf}, "ended_at": math.inf}
        with Flowcept() as f:
            assert emit(record) is True
            record["used"]["v"] = 0  # a later change by the caller is not recorded
        (task,) = Flowcept.db.task_query({"task_id": "emit-nan"})
        assert task == {"type": "task", "task_id": "emit-nan", "workflow_id": f.workflow_id,
                        "campaign_id": f.campaign_id, "used": {"v": "NaN", "deep": ["Infinity"]},
                        "generated": {"loss": "-Infinity"}, "ended_at": "Infinity"}
        assert "workflow_id" not in record
