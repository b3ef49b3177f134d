"""The spec's PyTorch snippet runs verbatim: one parent-forward task per model(x) call."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from flowcept import Flowcept  # noqa: E402


class TestTorchSnippet:
    def test_training_loop_snippet(self, capsys):
        """Three epochs give three parent forwards (MyNet) with tensor metadata, each with one Linear child."""
        with Flowcept(workflow_name="torch_snippet") as fc:
            import torch
            import torch.nn as nn
            import torch.optim as optim
            from flowcept import flowcept_torch
            # Instrument the model with @flowcept_torch
            @flowcept_torch
            class MyNet(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.fc = nn.Linear(10, 1)
                def forward(self, x):
                    return self.fc(x)
            # Dummy training data
            x = torch.randn(100, 10) # 100 samples, 10 features
            y = torch.randn(100, 1) # 100 targets
            model = MyNet()
            optimizer = optim.SGD(model.parameters(), lr=0.01)
            loss_fn = nn.MSELoss()
            # Simple training loop
            for epoch in range(3):
                optimizer.zero_grad()
                out = model(x) # provenance captured here
                loss = loss_fn(out, y)
                loss.backward()
                optimizer.step()
                print(f"Epoch {epoch} - Loss {loss.item()}")

        assert [line.split()[:2] for line in capsys.readouterr().out.splitlines()] == [
            ["Epoch", "0"], ["Epoch", "1"], ["Epoch", "2"]]
        tasks = Flowcept.db.task_query({"workflow_id": fc.workflow_id})
        parents = sorted((t for t in tasks if t["subtype"] == "parent_forward"), key=lambda t: t["started_at"])
        children = [t for t in tasks if t["subtype"] == "child_forward"]
        assert len(parents) == 3 and len(children) == 3 and len(tasks) == 6
        x_meta = {"shape": [100, 10], "dtype": "float32", "device": "cpu", "nbytes": 4000}
        out_meta = {"shape": [100, 1], "dtype": "float32", "device": "cpu", "nbytes": 400}
        for p in parents:
            assert p["activity_id"] == "MyNet" and p["status"] == "FINISHED"
            assert p["used"] == {"tensor": x_meta} and p["generated"] == {"tensor": out_meta}
            assert p["custom_metadata"]["is_training"] is True
            assert p["started_at"] <= p["ended_at"]
            assert "parent_task_id" not in p
        assert sorted(c["parent_task_id"] for c in children) == sorted(p["task_id"] for p in parents)
        assert {c["activity_id"] for c in children} == {"Linear"}
        # The model's workflow record hangs under the running workflow.
        (model_wf,) = Flowcept.db.workflow_query({"parent_workflow_id": fc.workflow_id})
        assert model_wf["name"] == "MyNet"
        assert model_wf["custom_metadata"]["workflow_type"] == "TorchModule"
        assert {p["custom_metadata"]["model_workflow_id"] for p in parents} == {model_wf["workflow_id"]}
