"""@flowcept_torch: forward tasks, children modes, options, parent links, epoch and batch loops."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from flowcept import Flowcept, FlowceptLoop, flowcept_task, flowcept_torch  # noqa: E402
from flowcept.instrumentation.flowcept_torch import (  # noqa: E402
    FlowceptBatchLoop, FlowceptEpochLoop, get_torch_model_profile)
from tests.conftest import write_settings  # noqa: E402


def make_net():
    @flowcept_torch
    class Net(nn.Module):
        """A two-layer net."""

        def __init__(self, width=4):
            super().__init__()
            self.body = nn.Sequential(nn.Linear(3, width), nn.ReLU())
            self.head = nn.Linear(width, 1)

        def forward(self, x, scale=1.0):
            return self.head(self.body(x)) * scale

    return Net


def tasks_of(wf, **flt):
    return Flowcept.db.task_query({"workflow_id": wf, **flt})


def by_subtype(wf, subtype):
    return sorted(tasks_of(wf, subtype=subtype), key=lambda t: t["started_at"])


class TestForwardCapture:
    def test_parent_and_children_tree(self):
        """Every submodule at any depth records a child task under its enclosing module's forward."""
        Net = make_net()
        with Flowcept() as fc:
            model = Net()
            model(torch.zeros(2, 3))
        (parent,) = by_subtype(fc.workflow_id, "parent_forward")
        children = {c["custom_metadata"]["module_name"]: c for c in by_subtype(fc.workflow_id, "child_forward")}
        assert sorted(children) == ["body", "body.0", "body.1", "head"]
        assert children["body"]["parent_task_id"] == parent["task_id"]
        assert children["head"]["parent_task_id"] == parent["task_id"]
        assert children["body.0"]["parent_task_id"] == children["body"]["task_id"]
        assert children["body.1"]["activity_id"] == "ReLU"
        assert children["head"]["used"] == {"tensor": {"shape": [2, 4], "dtype": "float32", "device": "cpu",
                                                       "nbytes": 32}}
        assert children["head"]["generated"]["tensor"]["shape"] == [2, 1]
        assert parent["used"]["tensor"]["shape"] == [2, 3]

    def test_kwargs_and_eval_mode(self):
        """Forward kwargs land in used; eval mode is recorded as is_training False."""
        Net = make_net()
        with Flowcept() as fc:
            model = Net(custom_metadata={"run": "r1"})
            model.eval()
            with torch.no_grad():
                model(torch.zeros(5, 3), scale=2.0)
        (parent,) = by_subtype(fc.workflow_id, "parent_forward")
        assert parent["used"]["scale"] == 2.0
        assert parent["custom_metadata"]["is_training"] is False
        assert parent["custom_metadata"]["run"] == "r1"

    def test_parent_only(self, tmp_path, monkeypatch):
        """what: parent_only records only the model's forward."""
        write_settings(tmp_path, "instrumentation:\n  torch:\n    what: parent_only\n", monkeypatch)
        Net = make_net()
        with Flowcept() as fc:
            Net()(torch.zeros(1, 3))
        assert [t["subtype"] for t in tasks_of(fc.workflow_id)] == ["parent_forward"]

    def test_what_null_disables(self, tmp_path, monkeypatch):
        """what: null turns torch capture off; the model still works."""
        write_settings(tmp_path, "instrumentation:\n  torch:\n    what: null\n", monkeypatch)
        Net = make_net()
        with Flowcept() as fc:
            out = Net()(torch.zeros(1, 3))
        assert out.shape == (1, 1)
        assert tasks_of(fc.workflow_id) == []

    def test_lightweight_children(self, tmp_path, monkeypatch):
        """children_mode: lightweight children carry no tensor metadata."""
        write_settings(tmp_path, "instrumentation:\n  torch:\n    children_mode: lightweight\n", monkeypatch)
        Net = make_net()
        with Flowcept() as fc:
            Net()(torch.zeros(1, 3))
        children = by_subtype(fc.workflow_id, "child_forward")
        assert len(children) == 4 and all("used" not in c and "generated" not in c for c in children)

    def test_no_flowcept_and_capture_disabled(self):
        """Without a running Flowcept or with capture_enabled=False the model runs uncaptured."""
        Net = make_net()
        model = Net()
        assert model(torch.zeros(1, 3)).shape == (1, 1)
        with Flowcept() as fc:
            Net(capture_enabled=False)(torch.zeros(1, 3))
        assert tasks_of(fc.workflow_id) == []

    def test_error_in_forward(self):
        """An exception in forward is recorded as ERROR and re-raised unchanged."""
        @flowcept_torch
        class Bad(nn.Module):
            def forward(self, x):
                raise ValueError("bad input")

        with Flowcept() as fc:
            with pytest.raises(ValueError, match="bad input"):
                Bad()(torch.zeros(1))
        (t,) = tasks_of(fc.workflow_id)
        assert t["status"] == "ERROR" and t["stderr"] == "bad input"

    def test_dataclass_and_sparse_outputs_are_described_not_stored(self):
        """A model returning a dataclass of tensors, or a sparse tensor, records tensor metadata, never values."""
        import dataclasses

        @dataclasses.dataclass
        class Out:
            logits: object
            loss: object

        @flowcept_torch
        class Model(nn.Module):
            def __init__(self, kind):
                super().__init__()
                self.kind = kind

            def forward(self, x):
                y = x * 2
                return Out(y, y.sum()) if self.kind == "dataclass" else y.to_sparse()

        with Flowcept() as fc:
            Model("dataclass")(torch.ones(1, 2))
            Model("sparse")(torch.tensor([[0.0, 3.0]]))
        got = [t["generated"] for t in sorted(tasks_of(fc.workflow_id, subtype="parent_forward"),
                                              key=lambda t: t["started_at"])]
        assert got == [
            {"tensor": {"logits": {"shape": [1, 2], "dtype": "float32", "device": "cpu", "nbytes": 8},
                        "loss": {"shape": [], "dtype": "float32", "device": "cpu", "nbytes": 4}}},
            {"tensor": {"shape": [1, 2], "dtype": "float32", "device": "cpu", "nbytes": 4}}]

    def test_parent_is_enclosing_task_or_iteration(self):
        """Forwards inside a @flowcept_task and a FlowceptLoop iteration get them as parents."""
        Net = make_net()

        @flowcept_task
        def step(m):
            m(torch.zeros(1, 3))

        with Flowcept() as fc:
            model = Net()
            step(model)
            loop = FlowceptLoop(range(1))
            for _ in loop:
                model(torch.zeros(1, 3))
        (task,) = tasks_of(fc.workflow_id, activity_id="step")
        (it,) = tasks_of(fc.workflow_id, activity_id="loop_iteration")
        parents = by_subtype(fc.workflow_id, "parent_forward")
        assert [p["parent_task_id"] for p in parents] == [task["task_id"], it["task_id"]]

    def test_user_init_options_and_profile(self):
        """Our options are not passed to a user __init__ that does not name them; get_profile lands on the
        model's workflow record."""
        Net = make_net()
        with Flowcept() as fc:
            model = Net(width=8, get_profile=True, parent_task_id="outer-1")
            model(torch.zeros(1, 3))
        (wf,) = Flowcept.db.workflow_query({"parent_workflow_id": fc.workflow_id})
        profile = wf["custom_metadata"]["model_profile"]
        assert profile["params"] == 3 * 8 + 8 + 8 + 1
        assert profile["max_width"] == 8 and profile["n_modules"] == 5
        assert profile["modules"]["head"]["type"] == "Linear"
        (parent,) = by_subtype(fc.workflow_id, "parent_forward")
        assert parent["parent_task_id"] == "outer-1"

    def test_model_built_before_flowcept_starts(self):
        """A model constructed before the workflow starts registers with it at its first forward."""
        Net = make_net()
        model = Net()
        with Flowcept() as fc:
            model(torch.zeros(1, 3))
            model(torch.zeros(1, 3))
        assert len(by_subtype(fc.workflow_id, "parent_forward")) == 2
        assert len(Flowcept.db.workflow_query({"parent_workflow_id": fc.workflow_id})) == 1

    def test_class_identity(self):
        """The decorated class keeps its name and docstring and subclasses the original."""
        Net = make_net()
        assert Net.__name__ == "Net" and Net.__doc__ == "A two-layer net."
        assert isinstance(Net(), nn.Module)


class TestProfile:
    def test_profile_of_plain_module(self):
        """get_torch_model_profile works on any module."""
        p = get_torch_model_profile(nn.Linear(2, 3))
        assert p["params"] == 9 and p["n_modules"] == 1 and p["modules"][""]["in_features"] == 2
        assert "Linear" in p["model_repr"]


class TestTorchLoops:
    @pytest.mark.parametrize("mode", ["lightweight", "default"])
    def test_epoch_and_batch_loops(self, mode, tmp_path, monkeypatch):
        """Batches are children of epochs; forwards are children of batches, in both loop modes."""
        write_settings(tmp_path, f"instrumentation:\n  torch:\n    epoch_loop: {mode}\n    batch_loop: {mode}\n"
                                 "    what: parent_only\n", monkeypatch)
        Net = make_net()
        with Flowcept() as fc:
            model = Net()
            epochs = FlowceptEpochLoop(2, model)
            for _epoch in epochs:
                batches = FlowceptBatchLoop([torch.zeros(1, 3), torch.ones(1, 3)], epochs)
                for batch in batches:
                    model(batch)
        wf = fc.workflow_id
        ep = {t["task_id"] for t in tasks_of(wf, activity_id="epochs_loop_iteration")}
        bt = tasks_of(wf, activity_id="train_batch_iteration")
        assert len(ep) == 2 and len(bt) == 4
        assert {b["parent_task_id"] for b in bt} == ep
        fw = by_subtype(wf, "parent_forward")
        assert len(fw) == 4
        assert sorted(f["parent_task_id"] for f in fw) == sorted(b["task_id"] for b in bt)

    def test_capture_epochs_at_every(self, tmp_path, monkeypatch):
        """capture_epochs_at_every: 2 records forwards of epochs 0 and 2 only."""
        write_settings(tmp_path, "instrumentation:\n  torch:\n    capture_epochs_at_every: 2\n"
                                 "    what: parent_only\n", monkeypatch)
        Net = make_net()
        with Flowcept() as fc:
            model = Net()
            for _epoch in FlowceptEpochLoop(3, model):
                model(torch.zeros(1, 3))
        fw = by_subtype(fc.workflow_id, "parent_forward")
        assert len(fw) == 2

    def test_epoch_loop_disabled(self, tmp_path, monkeypatch):
        """epoch_loop: null records no epoch or batch iterations; forwards are still recorded."""
        write_settings(tmp_path, "instrumentation:\n  torch:\n    epoch_loop: null\n    what: parent_only\n",
                       monkeypatch)
        Net = make_net()
        with Flowcept() as fc:
            model = Net()
            epochs = FlowceptEpochLoop(2, model)
            for _epoch in epochs:
                for batch in FlowceptBatchLoop([torch.zeros(1, 3)], epochs):
                    model(batch)
        assert [t["subtype"] for t in tasks_of(fc.workflow_id)] == ["parent_forward"] * 2


def test_model_without_flowcept_warns_once(caplog):
    """An instrumented model called while no Flowcept runs works as is, records nothing and warns once."""
    import torch
    import torch.nn as nn

    from flowcept import flowcept_torch

    @flowcept_torch
    class Tiny(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(2, 1)

        def forward(self, x):
            return self.fc(x)

    model = Tiny()
    for _ in range(3):
        assert model(torch.zeros(1, 2)).shape == (1, 1)
    assert sum("Tiny.forward" in r.getMessage() for r in caplog.records) == 1
