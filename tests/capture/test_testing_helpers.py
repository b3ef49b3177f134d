"""flowcept.testing: capture_records() collects delivered records in memory; reset() stops what runs."""

from flowcept import Flowcept, flowcept_task
from flowcept._runtime import RUNTIME
from flowcept.testing import capture_records, reset


@flowcept_task
def double(x):
    return 2 * x


def test_capture_records_without_a_store(tmp_path, monkeypatch):
    """Offline and without a buffer file, the records still arrive in the list, in capture order."""
    from tests.conftest import write_settings

    write_settings(tmp_path, "project:\n  db_flush_mode: offline\n  dump_buffer:\n    enabled: false\n", monkeypatch)
    with capture_records() as records:
        with Flowcept(workflow_name="mem") as fc:
            double(3)
            double(4)
    tasks = records.of_type("task")
    assert [(t["used"], t["generated"], t["status"], t["workflow_id"]) for t in tasks] == [
        ({"x": 3}, {"arg_0": 6}, "FINISHED", fc.workflow_id), ({"x": 4}, {"arg_0": 8}, "FINISHED", fc.workflow_id)]
    assert [w["status"] for w in records.of_type("workflow")] == ["RUNNING", "FINISHED"]
    assert not list(tmp_path.glob("*.jsonl"))
    assert RUNTIME.taps == []


def test_capture_records_while_a_flowcept_runs():
    """Records captured before leaving the block are flushed into the list even though the workflow still runs."""
    with Flowcept(workflow_name="running") as fc:
        with capture_records() as records:
            double(5)
        assert [t["used"] for t in records.of_type("task")] == [{"x": 5}]
        double(6)  # after the block: not collected
    assert len(records.of_type("task")) == 1 and fc.workflow_id == records.of_type("task")[0]["workflow_id"]


def test_reset_stops_running_workflows():
    """reset() stops every running Flowcept (its end record is written) and leaves no scope running."""
    fc = Flowcept(workflow_name="left-open").start()
    assert RUNTIME.running_scopes
    reset()
    assert not fc.is_started and RUNTIME.running_scopes == []
    assert Flowcept.db.workflow_query({"workflow_id": fc.workflow_id})[0]["status"] == "FINISHED"
