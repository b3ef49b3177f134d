"""FlowceptLoop and FlowceptLightweightLoop: early exits, errors, empty and unknown-length inputs, numpy, nesting."""

from __future__ import annotations

import itertools
import logging

import pytest

from flowcept import Flowcept, FlowceptLightweightLoop, FlowceptLoop, flowcept_task
from flowcept._internal_errors import capture_warning_count
from flowcept.capture.loop import CHUNK

LOOPS = [FlowceptLoop, FlowceptLightweightLoop]


def tasks_of(workflow_id, **flt):
    return Flowcept.db.task_query({"workflow_id": workflow_id, **flt})


def iterations(workflow_id, activity_id="loop_iteration"):
    return sorted(tasks_of(workflow_id, activity_id=activity_id), key=lambda t: t["used"]["i"])


@pytest.mark.parametrize("cls", LOOPS)
class TestBothLoops:
    def test_break_records_the_iterations_that_ran(self, cls):
        """A loop left with break records every iteration that started, the last one marked interrupted."""
        with Flowcept() as fc:
            loop = cls([10, 20, 30, 40])
            for x in loop:
                loop.end_iter({"y": x + 1})
                if x == 20:
                    break
        its = iterations(fc.workflow_id)
        assert [t["used"] for t in its] == [{"i": 0, "item": 10}, {"i": 1, "item": 20}]
        assert [t["generated"] for t in its] == [{"y": 11}, {"y": 21}]
        assert [t["status"] for t in its] == ["FINISHED", "FINISHED"]
        assert "custom_metadata" not in its[0]
        assert its[1]["custom_metadata"] == {"interrupted": True}

    def test_exception_in_body_records_and_propagates(self, cls):
        """An exception in the body propagates unchanged; the iterations that ran are recorded."""
        with Flowcept() as fc:
            loop = cls(range(5))
            with pytest.raises(KeyError, match="boom"):
                for x in loop:
                    loop.end_iter({"x": x})
                    if x == 2:
                        raise KeyError("boom")
        its = iterations(fc.workflow_id)
        assert [t["used"]["i"] for t in its] == [0, 1, 2]
        assert its[2]["custom_metadata"] == {"interrupted": True}
        assert [t["generated"] for t in its] == [{"x": 0}, {"x": 1}, {"x": 2}]

    @pytest.mark.parametrize("empty", [[], range(0), 0, ()])
    def test_empty_iterables_record_nothing(self, cls, empty):
        """Empty lists, ranges, tuples and 0 iterate zero times and record nothing."""
        with Flowcept() as fc:
            loop = cls(empty)
            assert list(loop) == []
            assert len(loop) == 0
        assert tasks_of(fc.workflow_id) == []

    def test_numpy_items(self, cls):
        """numpy arrays iterate by rows; each row is stored as a list, numpy scalars as numbers."""
        np = pytest.importorskip("numpy")
        arr = np.arange(6, dtype=np.int64).reshape(3, 2)
        with Flowcept() as fc:
            loop = cls(arr, item_name="row")
            for row in loop:
                loop.end_iter({"sum": row.sum()})
        its = iterations(fc.workflow_id)
        assert [t["used"] for t in its] == [{"i": 0, "row": [0, 1]}, {"i": 1, "row": [2, 3]},
                                            {"i": 2, "row": [4, 5]}]
        assert [t["generated"] for t in its] == [{"sum": 1}, {"sum": 5}, {"sum": 9}]

    def test_generator_with_items_length(self, cls):
        """A generator with items_length is iterated lazily, once, and len() is items_length."""
        produced = []

        def gen():
            for i in range(4):
                produced.append(i)
                yield i * 10

        with Flowcept() as fc:
            loop = cls(gen(), items_length=4)
            assert len(loop) == 4 and produced == []
            assert list(loop) == [0, 10, 20, 30]
        assert [t["used"]["item"] for t in iterations(fc.workflow_id)] == [0, 10, 20, 30]

    def test_int_items(self, cls):
        """An int n iterates over range(n)."""
        with Flowcept() as fc:
            assert list(cls(3, loop_name="n")) == [0, 1, 2]
        assert [t["used"] for t in iterations(fc.workflow_id, "n_iteration")] == [
            {"i": i, "item": i} for i in range(3)]

    def test_unsupported_items_raise(self, cls):
        """A value that is neither iterable nor an int raises TypeError."""
        with pytest.raises(TypeError):
            cls(3.5)

    def test_no_running_flowcept_is_plain(self, cls):
        """Without a running Flowcept the loop is a plain iterator and end_iter does nothing."""
        loop = cls(range(3))
        out = []
        for x in loop:
            loop.end_iter({"x": x})
            out.append(x)
        assert out == [0, 1, 2]

    def test_ids_unique_across_loops(self, cls):
        """Task ids are unique across two loops and group ids differ per loop."""
        with Flowcept() as fc:
            for _ in range(2):
                for _x in cls(range(3)):
                    pass
        its = tasks_of(fc.workflow_id)
        assert len(its) == 6 and len({t["task_id"] for t in its}) == 6
        assert len({t["group_id"] for t in its}) == 2

    def test_explicit_parent_and_workflow(self, cls):
        """parent_task_id and workflow_id arguments are stamped on every iteration."""
        with Flowcept() as fc:
            for _x in cls(range(2), parent_task_id="p-1", workflow_id="wf-x"):
                pass
        its = Flowcept.db.task_query({"workflow_id": "wf-x"})
        assert {t["parent_task_id"] for t in its} == {"p-1"} and len(its) == 2
        assert {t["campaign_id"] for t in its} == {fc.campaign_id}

    def test_a_list_changed_by_the_body_iterates_as_a_plain_for(self, cls):
        """A work list that grows runs its new items; one that shrinks does not run the removed ones; a list empty
        when the loop was made and filled before iterating runs its items. Each ran item is recorded."""
        grows, shrinks, filled = [1, 2, 3], [1, 2, 3, 4], []
        seen: dict = {"grows": [], "shrinks": [], "filled": []}
        with Flowcept() as fc:
            for x in cls(grows, loop_name="grows"):
                seen["grows"].append(x)
                if x == 1:
                    grows.append(4)
            for x in cls(shrinks, loop_name="shrinks"):
                seen["shrinks"].append(x)
                if x == 1:
                    shrinks.pop()
            loop = cls(filled, loop_name="filled")
            filled.extend([5, 6])
            for x in loop:
                seen["filled"].append(x)
                loop.end_iter({"x": x})
        assert seen == {"grows": [1, 2, 3, 4], "shrinks": [1, 2, 3], "filled": [5, 6]}
        for name, ran in seen.items():
            its = iterations(fc.workflow_id, f"{name}_iteration")
            assert [t["used"] for t in its] == [{"i": i, "item": x} for i, x in enumerate(ran)]
            assert all(t["status"] == "FINISHED" and "custom_metadata" not in t for t in its)
        assert [t["generated"] for t in iterations(fc.workflow_id, "filled_iteration")] == [{"x": 5}, {"x": 6}]

    @pytest.mark.parametrize("kind", ["list", "tuple", "iterator"])
    def test_items_changed_by_the_body_are_recorded_as_they_started(self, cls, kind):
        """An item the body changes is recorded as it was when its iteration started (as inputs are)."""
        items = [{"v": 0}, [0], {"v": 0}]
        source = {"list": items, "tuple": tuple(items), "iterator": iter(items)}[kind]
        with Flowcept() as fc:
            for item in cls(source, items_length=3):
                if isinstance(item, dict):
                    item["v"] = 99
                else:
                    item.append(99)
        assert [t["used"]["item"] for t in iterations(fc.workflow_id)] == [{"v": 0}, [0], {"v": 0}]
        assert items == [{"v": 99}, [0, 99], {"v": 99}]

    def test_end_iter_refuses_what_is_not_a_dict(self, cls):
        """end_iter with neither a dict nor key-value pairs raises a TypeError that says what to pass."""
        with Flowcept() as fc:
            loop = cls(range(1))
            for x in loop:
                with pytest.raises(TypeError, match=r"end_iter\(\) takes a dict .* not int"):
                    loop.end_iter(5)
                loop.end_iter([("x", x)])
        assert [t["generated"] for t in iterations(fc.workflow_id)] == [{"x": 0}]


class TestFlowceptLoop:
    def test_generator_without_items_length_materializes_with_warning(self, caplog):
        """FlowceptLoop reads an unknown-length iterator into a list, warning that items_length avoids it."""
        with Flowcept() as fc:
            with caplog.at_level(logging.WARNING, logger="flowcept"):
                loop = FlowceptLoop((i for i in range(3)), loop_name="g")
            assert "items_length" in caplog.text
            assert len(loop) == 3
            assert list(loop) == [0, 1, 2]
        assert len(iterations(fc.workflow_id, "g_iteration")) == 3

    def test_body_tasks_get_the_iteration_as_parent(self):
        """A decorated function called in the body is a child of the running iteration."""
        @flowcept_task
        def step(x):
            return x * 2

        with Flowcept() as fc:
            loop = FlowceptLoop(range(2))
            for x in loop:
                assert loop.get_current_iteration_id() is not None
                step(x)
        its = {t["used"]["i"]: t["task_id"] for t in iterations(fc.workflow_id)}
        steps = sorted(tasks_of(fc.workflow_id, activity_id="step"), key=lambda t: t["used"]["x"])
        assert [s["parent_task_id"] for s in steps] == [its[0], its[1]]

    def test_times_are_per_iteration(self):
        """started_at/ended_at bracket each iteration and follow each other."""
        with Flowcept() as fc:
            for _x in FlowceptLoop(range(3)):
                pass
        its = iterations(fc.workflow_id)
        for a, b in zip(its, its[1:]):
            assert a["started_at"] <= a["ended_at"] <= b["started_at"] <= b["ended_at"]


class TestLightweightLoop:
    def test_generator_without_items_length_raises(self):
        """An iterator without items_length is refused with a message naming items_length."""
        with pytest.raises(TypeError, match="items_length"):
            FlowceptLightweightLoop(itertools.count())

    def test_one_batched_append(self):
        """All iteration records reach the buffer in one extend call at loop end."""
        from flowcept.context import current_scope

        with Flowcept() as fc:
            buffer = current_scope().buffer
            calls = []
            orig_extend, orig_append = buffer.extend, buffer.append
            buffer.extend = lambda recs: (calls.append(("extend", len(recs))), orig_extend(recs))
            buffer.append = lambda rec: (calls.append(("append", 1)), orig_append(rec))
            try:
                loop = FlowceptLightweightLoop({"a", "b", "c"})
                for _x in loop:
                    assert calls == []
            finally:
                del buffer.extend, buffer.append
        assert calls == [("extend", 3)]
        assert len(iterations(fc.workflow_id)) == 3

    def test_end_iter_dicts_are_not_shared(self):
        """Iterations without end_iter have no generated; others keep their own dict."""
        with Flowcept() as fc:
            loop = FlowceptLightweightLoop(range(3))
            for x in loop:
                if x != 1:
                    loop.end_iter({"x": x})
        its = iterations(fc.workflow_id)
        assert [t.get("generated") for t in its] == [{"x": 0}, None, {"x": 2}]

    @pytest.mark.parametrize("items", [range(3), iter(range(3))], ids=["sized", "iterator"])
    def test_end_iter_values_are_snapshotted_when_given(self, items):
        """A list passed to end_iter and changed by later iterations keeps, in each record, its state then."""
        history = []
        with Flowcept() as fc:
            loop = FlowceptLightweightLoop(items, items_length=3)
            for x in loop:
                history.append(x)
                loop.end_iter({"history": history, "nan": float("nan")})
        its = iterations(fc.workflow_id)
        assert [t["generated"]["history"] for t in its] == [[0], [0, 1], [0, 1, 2]]
        assert {t["generated"]["nan"] for t in its} == {"NaN"}

    @pytest.mark.parametrize("items", [range(5), list(range(5)), iter(range(5))], ids=["range", "list", "iterator"])
    def test_end_iter_plain_values(self, items):
        """Dicts of numbers, strings and None (no container, so checked in bulk when their chunk is queued): NaN
        and infinities stored as strings and counted, numpy scalars as numbers, other values as given."""
        np = pytest.importorskip("numpy")
        given = [{"loss": float("nan"), "s": "a", "none": None},
                 {"loss": float("-inf"), "f32": np.float32("nan")},
                 {"i64": np.int64(7), "f64": np.float64(0.5), "ok": True},
                 {"x": 3, "y": 2.5},
                 {}]
        before = capture_warning_count()
        with Flowcept() as fc:
            loop = FlowceptLightweightLoop(items, items_length=5)
            for x in loop:
                loop.end_iter(given[x])
        assert capture_warning_count() - before == 3
        its = iterations(fc.workflow_id)
        assert [t["generated"] for t in its] == [
            {"loss": "NaN", "s": "a", "none": None}, {"loss": "-Infinity", "f32": "NaN"},
            {"i64": 7, "f64": 0.5, "ok": True}, {"x": 3, "y": 2.5}, {}]
        assert given[0]["loss"] != given[0]["loss"]  # the caller's dicts are left alone

    @pytest.mark.parametrize("items", [range(2), iter(range(2))], ids=["sized", "iterator"])
    def test_end_iter_takes_pairs_and_refuses_the_rest(self, items):
        """Key-value pairs are taken as dict() takes them; anything else is a TypeError that says what to pass."""
        with Flowcept() as fc:
            loop = FlowceptLightweightLoop(items, items_length=2)
            for x in loop:
                loop.end_iter([("x", x)])
                if x == 1:
                    with pytest.raises(TypeError, match=r"end_iter\(\) takes a dict .* not int"):
                        loop.end_iter(5)
        assert [t["generated"] for t in iterations(fc.workflow_id)] == [{"x": 0}, {"x": 1}]

    @pytest.mark.parametrize("items", [range(3), iter(range(3))], ids=["sized", "iterator"])
    def test_end_iter_arrays_changed_in_place_keep_their_values_of_then(self, items):
        """A numpy array (or a bytearray) holds no object the GC tracks, yet it can change: an array passed to
        end_iter and changed in place by later iterations keeps, in each record, its values when given."""
        np = pytest.importorskip("numpy")
        weights = np.zeros(2)
        with Flowcept() as fc:
            loop = FlowceptLightweightLoop(items, items_length=3)
            for x in loop:
                weights += 1  # in place
                loop.end_iter({"weights": weights})
        assert [t["generated"]["weights"] for t in iterations(fc.workflow_id)] == [[1.0, 1.0], [2.0, 2.0],
                                                                                     [3.0, 3.0]]

    def test_end_iter_reused_dict(self):
        """One dict changed and passed again in each iteration: each record keeps its values of then."""
        values: dict = {}
        with Flowcept() as fc:
            loop = FlowceptLightweightLoop(range(3))
            for x in loop:
                values["x"] = x
                values["name"] = f"n{x}"
                loop.end_iter(values)
                if x == 1:
                    values["late"] = [x]  # a container from here on: snapshotted when given
                elif x == 2:
                    values["late"].append(x)
        its = iterations(fc.workflow_id)
        assert [t["generated"] for t in its] == [{"x": 0, "name": "n0"}, {"x": 1, "name": "n1"},
                                                 {"x": 2, "name": "n2", "late": [1]}]

    @pytest.mark.parametrize("fail_at", [CHUNK, CHUNK + 2])
    def test_items_raising_between_iterations(self, fail_at):
        """When the items raise between iterations (at a chunk's end or inside one), every iteration that ran is
        recorded once, none marked interrupted (the last one had ended, as FlowceptLoop records it), and the error
        reaches the caller."""
        def items():
            yield from range(fail_at)
            raise ValueError("source failed")

        with Flowcept() as fc:
            loop = FlowceptLightweightLoop(items(), items_length=fail_at + 5)
            with pytest.raises(ValueError, match="source failed"):
                for x in loop:
                    loop.end_iter({"x": x})
        its = iterations(fc.workflow_id)
        assert [t["used"]["i"] for t in its] == list(range(fail_at))
        assert [t["generated"] for t in its] == [{"x": i} for i in range(fail_at)]
        assert not any("custom_metadata" in t for t in its)

    @pytest.mark.parametrize("kind", ["range", "iterator"])
    def test_exact_chunks_early_end_iter_and_empty_dict(self, kind):
        """A loop of exactly two chunks records each iteration once; end_iter before the first iteration attaches
        nothing (and does not raise); an empty dict is kept as given."""
        n = 2 * CHUNK
        with Flowcept() as fc:
            loop = FlowceptLightweightLoop(range(n) if kind == "range" else iter(range(n)), items_length=n)
            running = iter(loop)
            loop.end_iter({"early": True})
            assert loop.get_current_iteration_id() is None
            for x in running:
                loop.end_iter({} if x == 5 else {"x": x})
        its = iterations(fc.workflow_id)
        assert [t["used"] for t in its] == [{"i": i, "item": i} for i in range(n)]
        assert [t["generated"] for t in its] == [{} if i == 5 else {"x": i} for i in range(n)]
        assert [t["task_id"] for t in its] == [f"{loop.group_id}_{i}" for i in range(n)]
        assert not any("custom_metadata" in t for t in its)

    @pytest.mark.parametrize("kind", ["list", "tuple", "range", "iterator"])
    @pytest.mark.parametrize("stop_at", [None, 2 * CHUNK + 6, CHUNK - 1, CHUNK])
    def test_end_iter_across_chunks_and_break(self, kind, stop_at):
        """Over several chunks, with or without a break (at a chunk's last item, or a new chunk's first), every
        iteration that ran is recorded once, each end_iter dict with its own iteration, the interrupted one
        marked; get_current_iteration_id() names the running iteration."""
        n = 2 * CHUNK + 10
        items = {"list": list(range(n)), "tuple": tuple(range(n)), "range": range(n), "iterator": iter(range(n))}[kind]
        seen_ids = []
        with Flowcept() as fc:
            loop = FlowceptLightweightLoop(items, items_length=n)
            for x in loop:
                if x % 3 == 0:
                    loop.end_iter({"x": x})
                if x % 1000 == 0 or x == stop_at:
                    seen_ids.append((x, loop.get_current_iteration_id()))
                if x == stop_at:
                    break
        its = iterations(fc.workflow_id)
        ran = n if stop_at is None else stop_at + 1
        assert [t["used"]["i"] for t in its] == list(range(ran))
        assert all(t["used"]["item"] == t["used"]["i"] for t in its)
        assert [t.get("generated") for t in its] == [{"x": i} if i % 3 == 0 else None for i in range(ran)]
        assert [t["task_id"] for t in its] == [f"{loop.group_id}_{i}" for i in range(ran)]
        assert seen_ids == [(x, f"{loop.group_id}_{x}") for x, _ in seen_ids]
        interrupted = [t["used"]["i"] for t in its if t.get("custom_metadata") == {"interrupted": True}]
        assert interrupted == ([] if stop_at is None else [stop_at])

    def test_iteration_ids_follow_the_group(self):
        """get_current_iteration_id() is the recorded task id of the running iteration."""
        with Flowcept() as fc:
            loop = FlowceptLightweightLoop(["a", "b"])
            ids = [loop.get_current_iteration_id() for _x in loop]
        its = iterations(fc.workflow_id)
        assert ids == [t["task_id"] for t in its]
        assert loop.get_current_iteration_id() is None


class TestNesting:
    @pytest.mark.parametrize("inner_cls", LOOPS)
    def test_nested_loops_under_a_task(self, inner_cls):
        """Outer iterations are children of the enclosing task; inner iterations of the outer iteration."""
        @flowcept_task
        def train(n):
            outer = FlowceptLoop(range(n), loop_name="outer")
            for i in outer:
                inner = inner_cls(range(2), loop_name="inner")
                for j in inner:
                    inner.end_iter({"ij": i * 10 + j})
            return n

        with Flowcept() as fc:
            train(2)
        (task,) = tasks_of(fc.workflow_id, activity_id="train")
        outers = iterations(fc.workflow_id, "outer_iteration")
        assert [o["parent_task_id"] for o in outers] == [task["task_id"]] * 2
        inners = tasks_of(fc.workflow_id, activity_id="inner_iteration")
        assert len(inners) == 4
        by_parent = {}
        for t in inners:
            by_parent.setdefault(t["parent_task_id"], []).append(t["generated"]["ij"])
        assert {k: sorted(v) for k, v in by_parent.items()} == {
            outers[0]["task_id"]: [0, 1], outers[1]["task_id"]: [10, 11]}
        assert task["status"] == "FINISHED" and task["generated"] == {"arg_0": 2}
