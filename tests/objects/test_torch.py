"""A real torch model saved, changed, saved again, and both versions loaded back equal to what was saved."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(8, 16)
        self.fc2 = nn.Linear(16, 2)
        self.register_buffer("steps", torch.zeros(1))

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))


def _snapshot(model) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_torch_model_versions_round_trip(db):
    """Version 0 and version 1 of a trained model load back exactly as saved, into fresh models."""
    torch.manual_seed(1)
    model = Net()
    first = _snapshot(model)
    oid = db.insert_or_update_torch_model(model, object_id="net", custom_metadata={"epoch": 0}, tags=["ckpt"])
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    loss = model(torch.randn(32, 8)).pow(2).mean()
    loss.backward()
    optimizer.step()
    model.steps += 1
    second = _snapshot(model)
    assert not _equal(first, second)
    db.insert_or_update_torch_model(model, object_id=oid, custom_metadata={"epoch": 1}, control_version=True)

    restored0 = db.load_torch_model(Net(), "net", version=0)
    restored1 = db.load_torch_model(Net(), "net")
    assert _equal(_snapshot(restored0), first)
    assert _equal(_snapshot(restored1), second)
    meta = restored1._flowcept_model_object
    assert (meta.object_id, meta.version, meta.object_type, meta.tags) == ("net", 1, "ml_model", ["ckpt"])
    custom = meta.custom_metadata
    assert custom["class"] == f"{Net.__module__}.Net" and custom["epoch"] == 1
    profile = custom["model_profile"]
    assert profile["params"] == 8 * 16 + 16 + 16 * 2 + 2
    assert profile["modules"]["fc1"]["type"] == "Linear"
    assert restored0._flowcept_model_object.custom_metadata["epoch"] == 0
    x = torch.randn(4, 8)
    with torch.no_grad():
        assert torch.equal(restored1(x), model(x))


def test_torch_model_without_profile_and_through_flowcept(db):
    """save_profile=False leaves the profile out; Flowcept's static helper saves the same way."""
    from flowcept import Flowcept

    model = Net()
    Flowcept.insert_or_update_torch_model(model, object_id="plain", save_profile=False)
    assert set(db.get_blob_object("plain").custom_metadata) == {"class"}
    assert _equal(_snapshot(Flowcept.load_torch_model(Net(), "plain")), _snapshot(model))
