"""The spec's five loop snippets (Loop Instrumentation section) run verbatim and leave the expected records."""

from __future__ import annotations

import pytest

from flowcept import Flowcept


def iterations(workflow_id, activity_id):
    found = Flowcept.db.task_query({"workflow_id": workflow_id, "activity_id": activity_id})
    return sorted(found, key=lambda t: t["used"]["i"])


class TestLoopSnippets:
    def test_intro_snippet(self, capsys):
        """The intro snippet records five FINISHED iterations with used {i, item}, generated from end_iter."""
        import random
        from time import sleep

        from flowcept import FlowceptLoop

        with Flowcept():
            loop = FlowceptLoop(range(5)) # See also: FlowceptLightweightLoop
            for item in loop:
                loss = random.random()
                sleep(0.05)
                print(item, loss)
                # The following is optional, in case you want to capture values generated inside the loop.
                loop.end_iter({"item": item, "loss": loss})

        out = capsys.readouterr().out.splitlines()
        assert [line.split()[0] for line in out] == ["0", "1", "2", "3", "4"]
        wf = Flowcept.current_workflow_id
        its = iterations(wf, "loop_iteration")
        assert [t["used"] for t in its] == [{"i": i, "item": i} for i in range(5)]
        for t, line in zip(its, out):
            assert t["generated"] == {"item": t["used"]["i"], "loss": float(line.split()[1])}
            assert t["status"] == "FINISHED" and t["subtype"] == "iteration"
            assert t["ended_at"] - t["started_at"] >= 0.04
            assert "parent_task_id" not in t
        assert len({t["task_id"] for t in its}) == 5
        assert len({t["group_id"] for t in its}) == 1

    def test_per_iteration_telemetry_and_streaming(self):
        """train_loop iterations carry used {i, epoch}, generated loss and status; no telemetry when it is off."""
        from time import sleep
        from flowcept import Flowcept
        from flowcept import FlowceptLoop

        with Flowcept(workflow_name="telemetry_stream"):
            loop = FlowceptLoop(range(5), loop_name="train_loop", item_name="epoch")
            for epoch in loop:
                loss = 0.1 * (5 - epoch)
                sleep(0.02)
                # Attach values produced inside this iteration
                loop.end_iter({"loss": loss})
        # Each iteration is sent with status and, if enabled, telemetry_at_end.

        wf = Flowcept.current_workflow_id
        assert Flowcept.db.workflow_query({"workflow_id": wf})[0]["name"] == "telemetry_stream"
        its = iterations(wf, "train_loop_iteration")
        assert [t["used"] for t in its] == [{"i": e, "epoch": e} for e in range(5)]
        assert [t["generated"] for t in its] == [{"loss": 0.1 * (5 - e)} for e in range(5)]
        assert {t["status"] for t in its} == {"FINISHED"}
        assert all("telemetry_at_end" not in t for t in its)
        starts = [t["started_at"] for t in its]
        assert starts == sorted(starts)

    def test_per_iteration_telemetry_when_enabled(self, tmp_path, monkeypatch):
        """With telemetry capture on, each FlowceptLoop iteration carries telemetry_at_end."""
        from tests.conftest import write_settings

        write_settings(tmp_path, "telemetry_capture:\n  cpu: true\n  mem: true\n", monkeypatch)
        from flowcept import FlowceptLoop

        with Flowcept(workflow_name="telemetry_stream") as fc:
            loop = FlowceptLoop(range(3), loop_name="train_loop", item_name="epoch")
            for epoch in loop:
                loop.end_iter({"loss": epoch})
        its = iterations(fc.workflow_id, "train_loop_iteration")
        assert len(its) == 3
        assert all("cpu" in t["telemetry_at_end"] and "memory" in t["telemetry_at_end"] for t in its)

    def test_batched_publish(self):
        """eval_loop (lightweight) records one FINISHED iteration per batch with used {i, batch} and metric."""
        from flowcept import Flowcept
        from flowcept import FlowceptLightweightLoop

        data = [0, 1, 2, 3, 4]
        with Flowcept(workflow_name="batched_publish"):
            loop = FlowceptLightweightLoop(data, loop_name="eval_loop", item_name="batch")
            for batch in loop:
                metric = batch * 2
                loop.end_iter({"metric": metric})
        # All iteration tasks are published together after the loop completes.

        wf = Flowcept.current_workflow_id
        its = iterations(wf, "eval_loop_iteration")
        assert [t["used"] for t in its] == [{"i": i, "batch": b} for i, b in enumerate(data)]
        assert [t["generated"] for t in its] == [{"metric": 2 * b} for b in data]
        assert {t["status"] for t in its} == {"FINISHED"}
        assert {t["subtype"] for t in its} == {"iteration"}
        assert len({t["task_id"] for t in its}) == 5

    def test_unknown_length_iterators(self):
        """Both options of the iterator snippet record 100 iterations each, with v = i*i."""
        import itertools as it
        from flowcept import Flowcept
        from flowcept.instrumentation.loop import FlowceptLoop, FlowceptLightweightLoop

        stream = it.islice(it.count(), 0, 100) # iterator without __len__
        with Flowcept(workflow_name="iterators"):
            # Option A: FlowceptLoop can materialize if you do not know the length,
            # but this may be expensive for large streams.
            loop_a = FlowceptLoop(stream, loop_name="loop_a", item_name="i", items_length=100)
            for i in loop_a:
                loop_a.end_iter({"v": i*i})
            # Option B: Lightweight requires items_length for iterators.
            stream2 = it.islice(it.count(), 0, 100)
            loop_b = FlowceptLightweightLoop(stream2, loop_name="loop_b", item_name="i", items_length=100)
            for i in loop_b:
                loop_b.end_iter({"v": i*i})

        wf = Flowcept.current_workflow_id
        for name in ("loop_a", "loop_b"):
            its = iterations(wf, f"{name}_iteration")
            # item_name="i" shares the key with the index: both are the same number here.
            assert [t["used"] for t in its] == [{"i": i} for i in range(100)]
            assert [t["generated"] for t in its] == [{"v": i * i} for i in range(100)]
            assert {t["status"] for t in its} == {"FINISHED"}
        assert len(Flowcept.db.task_query({"workflow_id": wf})) == 200
        assert len(loop_a) == len(loop_b) == 100

    @pytest.mark.parametrize("how", ["capture_enabled", "settings"])
    def test_disabled_loops_are_plain_iterators(self, how, tmp_path, monkeypatch):
        """Disabled capture (capture_enabled=False or instrumentation.enabled false) records nothing."""
        from flowcept import FlowceptLightweightLoop, FlowceptLoop

        kwargs = {}
        if how == "settings":
            from tests.conftest import write_settings

            write_settings(tmp_path, "instrumentation:\n  enabled: false\n", monkeypatch)
        else:
            kwargs["capture_enabled"] = False
        seen = []
        with Flowcept(interceptors=["instrumentation"]) as fc:
            for cls in (FlowceptLoop, FlowceptLightweightLoop):
                loop = cls(range(3), **kwargs)
                for x in loop:
                    seen.append(x)
                    loop.end_iter({"x": x})
                    assert loop.get_current_iteration_id() is None
        assert seen == [0, 1, 2, 0, 1, 2]
        assert Flowcept.db.task_query({"workflow_id": fc.workflow_id}) == []
