"""Record merge rules (flowcept.store.merge)."""

from flowcept.store.merge import coalesce, merge_record


class TestMergeRecord:
    def test_later_scalar_wins(self):
        """A field in the later message replaces the stored one."""
        assert merge_record({"task_id": "t", "x": 1, "y": 2}, {"task_id": "t", "x": 3}) == {"task_id": "t", "x": 3, "y": 2}

    def test_dicts_merge_keywise(self):
        """Dict-valued fields merge key-wise, recursively."""
        old = {"used": {"a": 1, "n": {"p": 1}}, "telemetry_at_start": {"cpu": 1}}
        new = {"used": {"b": 2, "n": {"q": 2}}, "telemetry_at_end": {"cpu": 2}}
        assert merge_record(old, new) == {"used": {"a": 1, "b": 2, "n": {"p": 1, "q": 2}},
                                          "telemetry_at_start": {"cpu": 1}, "telemetry_at_end": {"cpu": 2}}

    def test_terminal_status_not_replaced_by_running(self):
        """A late RUNNING message keeps FINISHED but still contributes its other fields."""
        merged = merge_record({"status": "FINISHED", "ended_at": 2.0}, {"status": "RUNNING", "started_at": 1.0})
        assert merged == {"status": "FINISHED", "ended_at": 2.0, "started_at": 1.0}

    def test_later_terminal_status_wins(self):
        """Between two terminal statuses the later wins."""
        assert merge_record({"status": "FINISHED"}, {"status": "ERROR"})["status"] == "ERROR"
        assert merge_record({"status": "ERROR"}, {"status": "FINISHED"})["status"] == "FINISHED"

    def test_running_to_finished(self):
        """A non-terminal status moves forward to a terminal one."""
        assert merge_record({"status": "RUNNING"}, {"status": "FINISHED"})["status"] == "FINISHED"

    def test_type_kept_and_none_skipped(self):
        """The stored type is kept and None in the later message changes nothing."""
        assert merge_record({"type": "task", "x": 1}, {"type": "other", "x": None}) == {"type": "task", "x": 1}

    def test_inputs_not_modified(self):
        """Neither argument is mutated."""
        old, new = {"used": {"a": 1}}, {"used": {"b": 2}}
        merge_record(old, new)
        assert old == {"used": {"a": 1}} and new == {"used": {"b": 2}}


class TestCoalesce:
    def test_merges_same_id_keeping_first_seen_order(self):
        """Records sharing an id collapse into one at the first position."""
        batch = [
            {"type": "task", "task_id": "a", "status": "RUNNING", "used": {"x": 1}},
            {"type": "workflow", "workflow_id": "w"},
            {"type": "task", "task_id": "b", "status": "RUNNING"},
            {"type": "task", "task_id": "a", "status": "FINISHED", "generated": {"y": 2}},
            {"type": "task", "task_id": "a", "status": "RUNNING"},
        ]
        assert coalesce(batch) == [
            {"type": "task", "task_id": "a", "status": "FINISHED", "used": {"x": 1}, "generated": {"y": 2}},
            {"type": "workflow", "workflow_id": "w"},
            {"type": "task", "task_id": "b", "status": "RUNNING"},
        ]

    def test_same_id_different_types_kept_apart(self):
        """A task and a workflow with the same id string are different records."""
        batch = [{"type": "task", "task_id": "x"}, {"type": "workflow", "workflow_id": "x"}]
        assert coalesce(batch) == batch

    def test_records_without_id_pass_through(self):
        """Records without an id are kept as they are."""
        batch = [{"type": "task", "activity_id": "f"}, {"type": "task", "activity_id": "f"}]
        assert coalesce(batch) == batch
