"""Processes started while a Flowcept runs (spawn, forkserver and fork pools, subprocess) join its workflow."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import uuid
from concurrent.futures import ProcessPoolExecutor

import pytest

from flowcept import Flowcept, flowcept_task
from tests.conftest import write_settings

WORK = """
from flowcept import flowcept_task


@flowcept_task
def square(x):
    return x * x
"""

CHILD = """
import sys, time
import {module} as work

for i in range(int(sys.argv[1])):
    work.square(i)
print("captured", flush=True)
if len(sys.argv) > 2:
    time.sleep(float(sys.argv[2]))
    work.square(-1)
    print("after", flush=True)
"""


@pytest.fixture(name="work")
def fixture_work(tmp_path, monkeypatch):
    """A module with a decorated function, importable by the parent and by every child (spawn needs that)."""
    folder = tmp_path / "mods"
    folder.mkdir()
    name = f"fc_child_work_{uuid.uuid4().hex[:8]}"
    (folder / f"{name}.py").write_text(WORK)
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(folder), *sys.path]))
    module = __import__(name)
    yield module
    sys.modules.pop(name, None)


def run_pool(work, method: str, kind: str, calls: int = 4000) -> int:
    """4 workers of the given start method and pool kind square ``calls`` numbers."""
    ctx = multiprocessing.get_context(method)
    if kind == "pool":
        with ctx.Pool(4) as pool:
            return sum(pool.map(work.square, range(calls)))
    with ProcessPoolExecutor(4, mp_context=ctx) as ex:
        return sum(ex.map(work.square, range(calls), chunksize=50))


def child_script(tmp_path, work) -> str:
    script = tmp_path / "child.py"
    script.write_text(textwrap.dedent(CHILD.format(module=work.__name__)))
    return str(script)


def tasks_of(workflow_id: str, activity: str | None = None) -> list[dict]:
    query = {"workflow_id": workflow_id}
    if activity:
        query["activity_id"] = activity
    return Flowcept.db.task_query(query)


def assert_pool_joined(fc: Flowcept, calls: int) -> None:
    """Exactly ``calls`` square tasks in the parent's workflow and campaign, each a child of the driver task."""
    (driver,) = tasks_of(fc.workflow_id, "driver")
    squares = tasks_of(fc.workflow_id, "square")
    assert len(squares) == calls
    assert len({t["task_id"] for t in squares}) == calls
    assert sorted(t["used"]["x"] for t in squares) == list(range(calls))
    assert {t["campaign_id"] for t in squares} == {fc.campaign_id}
    assert {t.get("parent_task_id") for t in squares} == {driver["task_id"]}
    assert {t["status"] for t in squares} == {"FINISHED"}
    assert sorted(t["generated"]["arg_0"] for t in squares) == sorted(x * x for x in range(calls))
    assert fc.report.late_children == 0
    assert Flowcept.db.workflow_query({"workflow_id": fc.workflow_id})[0]["status"] == "FINISHED"


def run_driver(work, method: str, kind: str) -> Flowcept:
    @flowcept_task
    def driver():
        return run_pool(work, method, kind)

    with Flowcept(workflow_name=f"{method}-{kind}") as fc:
        assert driver() == sum(x * x for x in range(4000))
    return fc


@pytest.mark.timeout(240)
@pytest.mark.parametrize("kind", ["pool", "executor"])
@pytest.mark.parametrize("method", ["spawn", "forkserver", "fork"])
def test_pool_workers_join_the_workflow(work, method, kind):
    """4 pool workers x 1,000 calls store exactly 4,000 tasks in the parent's workflow, under the driver task."""
    fc = run_driver(work, method, kind)
    assert_pool_joined(fc, 4000)


@pytest.mark.redis
@pytest.mark.postgres
@pytest.mark.timeout(300)
@pytest.mark.parametrize("kind", ["pool", "executor"])
@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_pool_workers_join_over_redis_and_postgres(work, method, kind, tmp_path, monkeypatch, pg_dsn):
    """With Redis and PostgreSQL, the parent's exact stop waits for its pool workers' 4,000 tasks."""
    from tests.distributed.test_distributed import pg_schema_uri
    from tests.transport.redis_env import cleanup_stream, redis_settings

    with pg_schema_uri(pg_dsn) as uri:
        env = redis_settings(tmp_path, monkeypatch, store="postgres", pg_dsn=uri)
        try:
            fc = run_driver(work, method, kind)
            # Read at once: stop() returned only after the keeper stored every child's records in PostgreSQL.
            assert_pool_joined(fc, 4000)
        finally:
            Flowcept.db.close()
            cleanup_stream(env["stream"])


def test_subprocess_child_joins(work, tmp_path):
    """`subprocess.run([sys.executable, script])` inside a workflow stores the script's tasks in that workflow."""
    script = child_script(tmp_path, work)
    with Flowcept(workflow_name="sub") as fc:
        out = subprocess.run([sys.executable, script, "25"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "no Flowcept is running" not in out.stderr
    squares = tasks_of(fc.workflow_id, "square")
    assert sorted(t["used"]["x"] for t in squares) == list(range(25))
    assert {t["campaign_id"] for t in squares} == {fc.campaign_id}
    # A subprocess started with no Flowcept running captures nothing, as before.
    out = subprocess.run([sys.executable, script, "3"], capture_output=True, text=True, timeout=120)
    assert "square was called while no Flowcept is running" in out.stderr
    assert len(tasks_of(fc.workflow_id, "square")) == 25


def test_grandchildren_join_through_a_joined_child(work, tmp_path):
    """A subprocess child's own spawn pool joins the same workflow."""
    script = tmp_path / "grand.py"
    script.write_text(textwrap.dedent(f"""
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor
        import {work.__name__} as work

        if __name__ == "__main__":
            work.square(100)
            with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as ex:
                print(sum(ex.map(work.square, range(20))))
    """))
    with Flowcept(workflow_name="grand") as fc:
        out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    squares = tasks_of(fc.workflow_id, "square")
    assert sorted(t["used"]["x"] for t in squares) == [*range(20), 100]


@pytest.mark.timeout(120)
def test_opt_out_leaves_children_uncaptured(work, tmp_path, monkeypatch, capfd):
    """instrumentation.join_child_processes: false keeps the old behaviour: the child warns and stores nothing."""
    write_settings(tmp_path, "instrumentation:\n  join_child_processes: false\n", monkeypatch)
    script = child_script(tmp_path, work)
    with Flowcept(workflow_name="opt-out") as fc:
        assert os.environ.get("FLOWCEPT_JOIN_WORKFLOW") is None
        out = subprocess.run([sys.executable, script, "5"], capture_output=True, text=True, timeout=120)
        assert run_pool(work, "spawn", "executor", calls=40) == sum(x * x for x in range(40))
    assert out.returncode == 0, out.stderr
    assert "square was called while no Flowcept is running, so nothing was captured" in out.stderr
    assert "square was called while no Flowcept is running" in capfd.readouterr().err
    assert tasks_of(fc.workflow_id, "square") == []


@pytest.mark.timeout(120)
def test_child_running_at_stop_is_counted_and_leaves(work, tmp_path):
    """A joined child still running at stop() is counted; stop waits for what it captured; later calls are not
    captured into the stopped workflow."""
    script = child_script(tmp_path, work)
    with Flowcept(workflow_name="running-child") as fc:
        proc = subprocess.Popen([sys.executable, script, "7", "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        assert proc.stdout.readline().strip() == "captured"
    try:
        assert (fc.report.children_running, fc.report.late_children) == (1, 0)
        # Exact: the child's 7 tasks were stored before stop() returned.
        assert sorted(t["used"]["x"] for t in tasks_of(fc.workflow_id, "square")) == list(range(7))
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert out.strip() == "after"
    assert "square was called while no Flowcept is running" in err
    assert len(tasks_of(fc.workflow_id, "square")) == 7


@pytest.mark.timeout(120)
def test_child_that_cannot_flush_before_the_deadline_is_late(work, tmp_path, monkeypatch):
    """A joined child that cannot answer before the stop deadline (stopped with SIGSTOP) is reported as late, and
    captures nothing into the workflow once it runs again."""
    write_settings(tmp_path, "buffer:\n  stop_timeout_secs: 2\n", monkeypatch)
    script = child_script(tmp_path, work)
    with Flowcept(workflow_name="late-child") as fc:
        # It sleeps 3 s after capturing: long enough to notice the stop once it runs again, before its next call.
        proc = subprocess.Popen([sys.executable, script, "3", "3"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        assert proc.stdout.readline().strip() == "captured"
        os.kill(proc.pid, signal.SIGSTOP)
    try:
        assert (fc.report.children_running, fc.report.late_children) == (1, 1)
    finally:
        os.kill(proc.pid, signal.SIGCONT)
    out, err = proc.communicate(timeout=60)
    assert out.strip() == "after"
    assert "square was called while no Flowcept is running" in err
    # What it captured before the stop arrives (late); the call after it is not in the workflow.
    assert sorted(t["used"]["x"] for t in tasks_of(fc.workflow_id, "square")) == [0, 1, 2]


def test_nothing_to_join_without_a_running_flowcept(work):
    """With no Flowcept running and no join info, capture finds nothing and publishes nothing."""
    from flowcept import _child

    assert _child.join_parent_workflow() is None
    assert "FLOWCEPT_JOIN_WORKFLOW" not in os.environ
    with Flowcept() as fc:
        info = os.environ["FLOWCEPT_JOIN_WORKFLOW"]
        folder = json.loads(info)["dir"]
        assert os.path.exists(os.path.join(folder, "open"))
        assert _child.join_parent_workflow() is None  # the publishing process never joins itself
    assert "FLOWCEPT_JOIN_WORKFLOW" not in os.environ
    assert not os.path.exists(folder)
    assert fc.report.children_running == 0


@pytest.mark.timeout(120)
@pytest.mark.parametrize("method", ["spawn", "fork"])
def test_pool_outliving_the_workflow_leaves_it(work, method):
    """Workers of a pool still open at stop() flush and leave: stop counts them, later calls are not captured."""
    ctx = multiprocessing.get_context(method)
    with Flowcept(workflow_name="open-pool") as fc:
        pool = ctx.Pool(2)
        try:
            assert pool.map(work.square, range(40), chunksize=1) == [x * x for x in range(40)]
        except BaseException:
            pool.terminate()
            raise
    try:
        assert fc.report.late_children == 0
        # Both workers when both ran before the stop (one may not have been scheduled yet under load).
        assert 1 <= fc.report.children_running <= 2
        # Exact: the workers' records were stored before stop() returned.
        assert sorted(t["used"]["x"] for t in tasks_of(fc.workflow_id, "square")) == list(range(40))
        assert pool.map(work.square, range(100, 110)) == [x * x for x in range(100, 110)]
    finally:
        pool.close()
        pool.join()
    assert len(tasks_of(fc.workflow_id, "square")) == 40


@pytest.mark.timeout(120)
def test_killed_child_is_late(work, tmp_path):
    """A joined child killed before it could leave (SIGKILL) is reported as late, not waited for."""
    script = child_script(tmp_path, work)
    with Flowcept(workflow_name="killed-child") as fc:
        proc = subprocess.Popen([sys.executable, script, "2", "60"], stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "captured"
        proc.kill()
        proc.wait(30)
    assert (fc.report.children_running, fc.report.late_children) == (0, 1)


def test_controllers_stopped_in_any_order_leave_nothing_published():
    """Two workflows stopped out of order: children join the one still running, then none."""
    a, b = Flowcept().start(), Flowcept().start()
    try:
        assert json.loads(os.environ["FLOWCEPT_JOIN_WORKFLOW"])["workflow_id"] == b.workflow_id
        b.stop()
        assert json.loads(os.environ["FLOWCEPT_JOIN_WORKFLOW"])["workflow_id"] == a.workflow_id
        b = Flowcept().start()
        a.stop()
        assert json.loads(os.environ["FLOWCEPT_JOIN_WORKFLOW"])["workflow_id"] == b.workflow_id
    finally:
        for fc in (a, b):
            if fc.is_started:
                fc.stop()
    assert "FLOWCEPT_JOIN_WORKFLOW" not in os.environ
    assert "flowcept_join_workflow" not in multiprocessing.current_process()._config
