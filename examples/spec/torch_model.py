"""Spec: PyTorch Models (needs `pip install 'flowcept[torch]'`; the training loop runs inside a Flowcept block)."""
import torch
import torch.nn as nn
import torch.optim as optim

from flowcept import Flowcept, flowcept_torch


# Instrument the model with @flowcept_torch
@flowcept_torch
class MyNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(10, 1)

    def forward(self, x):
        return self.fc(x)


with Flowcept(workflow_name="torch_training") as f:
    # Dummy training data
    x = torch.randn(100, 10)  # 100 samples, 10 features
    y = torch.randn(100, 1)  # 100 targets

    model = MyNet()
    optimizer = optim.SGD(model.parameters(), lr=0.01)
    loss_fn = nn.MSELoss()

    # Simple training loop
    for epoch in range(3):
        optimizer.zero_grad()
        out = model(x)  # provenance captured here
        loss = loss_fn(out, y)
        loss.backward()
        optimizer.step()
        print(f"Epoch {epoch} - Loss {loss.item()}")

forwards = Flowcept.db.task_query({"workflow_id": f.workflow_id, "subtype": "parent_forward"})
print(f"{len(forwards)} parent forwards, input shape {forwards[0]['used']['tensor']['shape']}")
