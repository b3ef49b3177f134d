"""A forked child that is signalled records its own work but never ends the parent's workflow."""

from __future__ import annotations

import os
import signal
import time

import pytest


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork only")
def test_sigterm_in_forked_child_leaves_the_parent_workflow_running():
    from flowcept import Flowcept, flowcept_task

    @flowcept_task
    def work(x):
        return x

    with Flowcept(workflow_name="parent-wf") as fc:
        work(0)
        Flowcept.db.count("tasks")  # the workflow start is stored before the fork
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: capture one task, say so, wait to be terminated
            os.close(read)
            try:
                work(1)
                os.write(write, b"x")
                time.sleep(60)
            finally:
                os._exit(3)
        os.close(write)
        assert os.read(read, 1) == b"x"
        os.kill(pid, signal.SIGTERM)
        _, status = os.waitpid(pid, 0)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGTERM
        [wf] = Flowcept.db.workflow_query({"workflow_id": fc.workflow_id})
        assert wf["status"] == "RUNNING" and "ended_at" not in wf
        assert sorted(t["used"]["x"] for t in Flowcept.db.task_query({"workflow_id": fc.workflow_id})) == [0, 1]
        work(2)
    [wf] = Flowcept.db.workflow_query({"workflow_id": fc.workflow_id})
    assert wf["status"] == "FINISHED" and wf["ended_at"] >= wf["started_at"]
    assert Flowcept.db.count("tasks", {"workflow_id": fc.workflow_id}) == 3
