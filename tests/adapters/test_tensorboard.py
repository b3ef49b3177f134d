"""TensorBoard adapter against real event files (torch SummaryWriter, tensorboardX, TF2-style tensors)."""

from __future__ import annotations

import time

import pytest

pytest.importorskip("tbparse")

from flowcept import Flowcept  # noqa: E402
from flowcept.errors import ConfigError  # noqa: E402
from tests.conftest import write_settings  # noqa: E402

pytestmark = pytest.mark.timeout(120)


def use_tensorboard(tmp_path, monkeypatch, logdir, extra: str = "") -> None:
    write_settings(tmp_path, f"adapters:\n  tensorboard:\n    kind: tensorboard\n    file_path: '{logdir}'\n"
                             f"    watch_interval_sec: 0.2\n{extra}", monkeypatch)


def tb_tasks(workflow_id: str) -> dict:
    return {t["activity_id"]: t for t in Flowcept.db.task_query({"workflow_id": workflow_id, "type": "task"})}


def wait_for(predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


class TestTensorboard:
    def test_torch_summary_writer_run_updated_not_duplicated(self, tmp_path, monkeypatch):
        """torch SummaryWriter scalars: one task per run dir, updated in place when new events arrive."""
        from torch.utils.tensorboard import SummaryWriter

        logdir = tmp_path / "tb"
        logdir.mkdir()
        use_tensorboard(tmp_path, monkeypatch, logdir)
        with Flowcept(interceptors=["tensorboard"]) as f:
            adapter = f._adapters[0]
            writer = SummaryWriter(str(logdir / "run1"))
            for step in range(3):
                writer.add_scalar("loss", 1.0 / (step + 1), step)
            writer.flush()
            wait_for(lambda: adapter.captured >= 1)
            for step in range(3, 6):
                writer.add_scalar("loss", 1.0 / (step + 1), step)
                writer.add_scalar("accuracy", step / 10, step)
            writer.close()
        tasks = Flowcept.db.task_query({"workflow_id": f.workflow_id, "type": "task"})
        assert len(tasks) == 1 and adapter.captured >= 2
        (t,) = tasks
        assert t["activity_id"] == "run1" and t["status"] == "FINISHED" and t["adapter_id"] == "tensorboard"
        assert t["generated"]["loss"] == pytest.approx(1 / 6) and t["generated"]["accuracy"] == pytest.approx(0.5)
        assert t["generated"]["step"] == {"loss": 5, "accuracy": 5}
        assert t["custom_metadata"]["log_path"] == str(logdir / "run1")
        assert len(t["custom_metadata"]["event_files"]) == 1 and "tfevents" in t["custom_metadata"]["event_files"][0]
        assert t["started_at"] <= t["ended_at"] and t["workflow_id"] == f.workflow_id

    def test_hparams_tensorboardx_and_tf2_tensors(self, tmp_path, monkeypatch):
        """hparams become `used`; tensorboardX scalars and TF2-style tensor summaries become `generated`."""
        import tensorboardX
        from tensorboard.compat.proto import event_pb2, summary_pb2, tensor_pb2, tensor_shape_pb2, types_pb2
        from tensorboard.summary.writer.event_file_writer import EventFileWriter
        from torch.utils.tensorboard import SummaryWriter

        logdir = tmp_path / "logs"
        logdir.mkdir()
        use_tensorboard(tmp_path, monkeypatch, logdir, extra="    log_metrics: ['*']\n")
        with Flowcept(interceptors=["tensorboard"]) as f:
            with SummaryWriter(str(logdir / "hp")) as writer:
                writer.add_hparams({"lr": 0.01, "optimizer": "adam"}, {"hp/acc": 0.75}, run_name="trial")
            with tensorboardX.SummaryWriter(str(logdir / "tbx")) as writer:
                for step in range(4):
                    writer.add_scalar("reward", float(step * step), step)
            tf2 = EventFileWriter(str(logdir / "tf2"))
            for step, value in enumerate([0.5, 0.75, 0.875]):
                scalars = summary_pb2.SummaryMetadata(
                    plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"))
                tensor = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, float_val=[value],
                                                tensor_shape=tensor_shape_pb2.TensorShapeProto())
                tf2.add_event(event_pb2.Event(wall_time=time.time(), step=step, summary=summary_pb2.Summary(
                    value=[summary_pb2.Summary.Value(tag="accuracy", tensor=tensor, metadata=scalars)])))
            tf2.close()
        tasks = tb_tasks(f.workflow_id)
        assert set(tasks) == {"hp/trial", "tbx", "tf2"}
        hp = tasks["hp/trial"]
        assert hp["used"] == {"lr": pytest.approx(0.01), "optimizer": "adam"}
        assert hp["generated"]["hp/acc"] == pytest.approx(0.75)
        assert tasks["tbx"]["generated"] == {"reward": 9.0, "step": {"reward": 3}}
        assert tasks["tf2"]["generated"] == {"accuracy": 0.875, "step": {"accuracy": 2}}
        assert all(t["status"] == "FINISHED" for t in tasks.values())

    def test_log_metrics_filter(self, tmp_path, monkeypatch):
        """log_metrics keeps only the named tags in `generated`."""
        import tensorboardX

        logdir = tmp_path / "tb"
        logdir.mkdir()
        use_tensorboard(tmp_path, monkeypatch, logdir, extra="    log_metrics: [accuracy]\n")
        with Flowcept(interceptors=["tensorboard"]) as f:
            with tensorboardX.SummaryWriter(str(logdir / "r")) as writer:
                writer.add_scalar("accuracy", 0.5, 1)
                writer.add_scalar("loss", 2.0, 1)
        (t,) = tb_tasks(f.workflow_id).values()
        assert t["generated"] == {"accuracy": 0.5, "step": {"accuracy": 1}}

    def test_path_not_a_directory(self, tmp_path, monkeypatch):
        """A file_path that is not a directory fails start() with a ConfigError naming the key."""
        (tmp_path / "file.txt").write_text("x")
        use_tensorboard(tmp_path, monkeypatch, tmp_path / "file.txt")
        f = Flowcept(interceptors=["tensorboard"])
        with pytest.raises(ConfigError) as err:
            f.start()
        assert err.value.key == "adapters.tensorboard.file_path" and not f.is_started
