"""TensorBoard adapter: each run directory of a log directory becomes a task record (hparams -> used, last value
of each scalar -> generated). No TensorFlow needed.

Run: python tensorboard_example.py   (needs: pip install 'flowcept[tensorboard]' torch)
"""
import os

os.makedirs("tb_logs", exist_ok=True)
# Usually in ~/.flowcept/settings.yaml; written here so the example runs as is.
with open("tb_settings.yaml", "w") as fh:
    fh.write("""
adapters:
  tensorboard:
    kind: tensorboard
    file_path: tb_logs        # must be a directory
    log_tags: [scalars, hparams, tensors]
    log_metrics: ['*']
    watch_interval_sec: 1
""")
os.environ["FLOWCEPT_SETTINGS_PATH"] = os.path.abspath("tb_settings.yaml")

from torch.utils.tensorboard import SummaryWriter  # noqa: E402

from flowcept import Flowcept  # noqa: E402

with Flowcept(interceptors=["tensorboard"], workflow_name="tensorboard-example") as fc:
    for lr in (0.1, 0.01):
        with SummaryWriter(f"tb_logs/lr_{lr}") as writer:
            for step in range(5):
                writer.add_scalar("loss", lr / (step + 1), step)

runs = Flowcept.db.task_query({"workflow_id": fc.workflow_id, "adapter_id": "tensorboard"})
for run in sorted(runs, key=lambda r: r["activity_id"]):
    print(run["activity_id"], {k: round(v, 4) for k, v in run["generated"].items() if k != "step"})
print(f"{len(runs)} tensorboard runs captured")
