"""The JSONL buffer file: consolidating one workflow's per-process files."""

from __future__ import annotations

import os

import orjson

from flowcept import Flowcept


def _piece(folder, workflow_id: str, suffix: str = "") -> None:
    """Write one task of ``workflow_id`` to ``flowcept_buffer_<workflow_id><suffix>.jsonl``, as a process would."""
    name = f"flowcept_buffer_{workflow_id}{suffix}.jsonl"
    record = {"type": "task", "task_id": f"{workflow_id}{suffix}", "workflow_id": workflow_id}
    (folder / name).write_bytes(orjson.dumps(record) + b"\n")


class TestConsolidate:
    def test_takes_only_this_workflows_files(self, tmp_path):
        """Consolidating run1 merges run1's per-process files and leaves run10's files, and other names, alone."""
        _piece(tmp_path, "run1", "_11_1")
        _piece(tmp_path, "run1", "_12_2")
        _piece(tmp_path, "run10", "_13_1")
        _piece(tmp_path, "run10")
        _piece(tmp_path, "run1", "_backup")
        records = Flowcept.read_buffer_file("flowcept_buffer.jsonl", consolidate=True, workflow_id="run1")
        assert sorted(r["task_id"] for r in records) == ["run1_11_1", "run1_12_2"]
        assert sorted(os.listdir(tmp_path)) == ["flowcept_buffer_run1.jsonl", "flowcept_buffer_run10.jsonl",
                                                "flowcept_buffer_run10_13_1.jsonl",
                                                "flowcept_buffer_run1_backup.jsonl", "home"]

    def test_workflow_id_is_taken_literally(self, tmp_path):
        """Glob characters in a workflow id match only themselves."""
        _piece(tmp_path, "w[12]*", "_11_1")
        _piece(tmp_path, "w1", "_12_1")
        _piece(tmp_path, "w2x", "_13_1")
        records = Flowcept.read_buffer_file("flowcept_buffer.jsonl", consolidate=True, workflow_id="w[12]*")
        assert [r["task_id"] for r in records] == ["w[12]*_11_1"]
        assert sorted(os.listdir(tmp_path)) == ["flowcept_buffer_w1_12_1.jsonl", "flowcept_buffer_w2x_13_1.jsonl",
                                                "flowcept_buffer_w[12]*.jsonl", "home"]
