"""TensorBoard adapter: each run directory under the log directory becomes one task record, read with tbparse.

Every ``watch_interval_sec`` the log directory is scanned; a directory holding event files is a run. A run whose
event files changed (size or modification time) since it was last read is read again and emitted under the same
``task_id`` (one per workflow and run directory), so the stored task is updated, never duplicated. Scalars written
by ``torch.utils.tensorboard.SummaryWriter`` and tensorboardX (``simple_value``) count, as do TF2-style tensor
summaries; no TensorFlow is needed. The last scan, at ``stop()``, marks the runs FINISHED.
"""

from __future__ import annotations

import os
import uuid

try:
    from tbparse import SummaryReader
except ImportError as exc:  # pragma: no cover - exercised without the extra
    from flowcept.errors import BackendUnavailableError

    raise BackendUnavailableError("the TensorBoard adapter", "tensorboard") from exc

from flowcept.adapters._base import PollingAdapter
from flowcept.errors import ConfigError
from flowcept.serialize import snapshot

_EVENTS = "tfevents"


def _plain(value):
    """A tensor value as a number when it holds one, else a JSON-able snapshot."""
    item = getattr(value, "item", None)
    if item is not None and getattr(value, "size", 2) == 1:
        return item()
    return snapshot(value)


class TensorboardAdapter(PollingAdapter):
    """The ``tensorboard`` adapter (settings ``file_path``, ``log_tags``, ``log_metrics``,
    ``watch_interval_sec``)."""

    kind = "tensorboard"

    def __init__(self, key: str, cfg: dict):
        super().__init__(key, cfg)
        self.root = os.path.abspath(os.path.expanduser(cfg["file_path"]))
        self._signatures: dict[str, tuple] = {}  # run dir -> event files' (name, size, mtime) when last read
        self._emitted: set[str] = set()

    def check(self) -> None:
        """The log directory must exist and be a directory."""
        if not os.path.isdir(self.root):
            raise ConfigError(f"not a directory: {self.root} (create it, or point file_path at the TensorBoard "
                              f"log directory)", key=f"adapters.{self.key}.file_path")

    def poll(self, final: bool) -> None:
        for run_dir, files in self._runs():
            signature = tuple((name, st.st_size, st.st_mtime_ns) for name, st in files)
            if self._signatures.get(run_dir) == signature:
                if final and run_dir in self._emitted:  # unchanged since read: only its status changes
                    self.emit({"type": "task", "task_id": self._task_id(run_dir), "status": "FINISHED"})
                continue
            try:
                record = self._record(run_dir, [name for name, _ in files], final)
            except Exception as exc:  # noqa: BLE001 - a half-written file: read again on the next scan
                self.failed(f"reading {run_dir}", exc)
                continue
            self._signatures[run_dir] = signature
            if record["used"] or record["generated"]:  # a writer's file with no summaries yet is no run
                self.emit(record)
                self._emitted.add(run_dir)

    def _runs(self):
        for current, _dirs, names in os.walk(self.root):
            files = []
            for name in sorted(names):
                if _EVENTS in name:
                    try:
                        files.append((name, os.stat(os.path.join(current, name))))
                    except OSError:
                        continue  # removed meanwhile
            if files:
                yield current, files

    def _task_id(self, run_dir: str) -> str:
        """One task per workflow and run directory: the same id on every read."""
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"flowcept-tensorboard:{self.scope.workflow_id}:{run_dir}"))

    def _record(self, run_dir: str, names: list[str], final: bool) -> dict:
        tags = set(self.cfg["log_tags"])
        wanted = self.cfg["log_metrics"]
        hparams: dict = {}
        last: dict = {}  # tag -> (step, wall_time, value)
        times: list[float] = []
        for name in names:
            reader = SummaryReader(os.path.join(run_dir, name), extra_columns={"wall_time"})
            if "hparams" in tags:
                for row in reader.hparams.itertuples(index=False):
                    hparams[row.tag] = _plain(row.value)
            for kind in ("scalars", "tensors"):
                if kind not in tags:
                    continue
                frame = getattr(reader, kind)
                for row in frame.itertuples(index=False):
                    times.append(float(row.wall_time))
                    if "*" not in wanted and row.tag not in wanted:
                        continue
                    seen = last.get(row.tag)
                    if seen is None or (row.step, row.wall_time) >= seen[:2]:
                        last[row.tag] = (int(row.step), float(row.wall_time), row.value)
        generated = {tag: _plain(value) for tag, (_step, _t, value) in last.items()}
        if last:
            generated["step"] = {tag: step for tag, (step, _t, _v) in last.items()}
        rel = os.path.relpath(run_dir, self.root)
        return {
            "type": "task",
            "task_id": self._task_id(run_dir),
            "activity_id": os.path.basename(self.root) if rel == "." else rel,
            "used": hparams, "generated": generated,
            "started_at": min(times) if times else None, "ended_at": max(times) if times else None,
            "status": "FINISHED" if final else "RUNNING",
            "custom_metadata": {"event_files": names, "log_path": run_dir},
        }
