"""Telemetry through the whole pipeline: settings -> tasks -> store -> dotted queries."""

from __future__ import annotations

import subprocess
import sys

from flowcept import Flowcept, FlowceptTask, flowcept_task
from tests.conftest import write_settings

FULL = """telemetry_capture:
  cpu: true
  per_cpu: true
  process_info: true
  mem: true
  disk: true
  network: true
  machine_info: true
"""


def _burn(seconds: float) -> int:
    import time

    end, x = time.process_time() + seconds, 0
    while time.process_time() < end:
        for i in range(10_000):
            x += i * i
    return x


class TestTelemetryPipeline:
    def test_tasks_carry_snapshots_and_summary(self, tmp_path, monkeypatch):
        """With telemetry on, each task stores start/end snapshots and a summary queryable with dotted filters."""
        write_settings(tmp_path, FULL, monkeypatch)

        @flowcept_task
        def burn(seconds):
            return _burn(seconds) > 0

        @flowcept_task
        def idle():
            return 1

        with Flowcept(workflow_name="telemetry") as f:
            burn(1.2)
            idle()
        hot = Flowcept.db.task_query({"telemetry_summary.process.cpu_user_time_diff": {"$gt": 1}})
        assert [t["activity_id"] for t in hot] == ["burn"]
        assert Flowcept.db.task_query({"telemetry_summary.cpu.user_time_diff": {"$gt": 1},
                                       "workflow_id": f.workflow_id})[0]["activity_id"] == "burn"
        (cold,) = Flowcept.db.task_query({"activity_id": "idle"})
        for key in ("cpu", "memory", "disk", "network", "process"):
            assert key in cold["telemetry_at_start"] and key in cold["telemetry_at_end"]
        assert len(cold["telemetry_at_end"]["cpu"]["percent_per_cpu"]) >= 1
        assert cold["telemetry_summary"]["duration_sec"] >= 0
        (wf,) = Flowcept.db.workflow_query({"workflow_id": f.workflow_id})
        (info,) = wf["machine_info"].values()
        assert info["hostname"] and "environment" not in info

    def test_capture_telemetry_overrides(self, tmp_path, monkeypatch):
        """capture_telemetry=False turns it off for one function; FlowceptTask(capture_telemetry=True) with
        telemetry off in settings still gets snapshots."""
        @flowcept_task(capture_telemetry=False)
        def quiet():
            return 1

        with Flowcept() as f:
            quiet()
            FlowceptTask(activity_id="explicit", capture_telemetry=True).end()
        got = {t["activity_id"]: t for t in Flowcept.db.task_query({"workflow_id": f.workflow_id})}
        assert "telemetry_at_start" not in got["quiet"]
        assert got["explicit"]["telemetry_at_end"]["process"]["memory"]["rss"] > 0

    def test_off_by_default(self):
        """With default settings tasks carry no telemetry."""
        @flowcept_task
        def plain():
            return 1

        with Flowcept() as f:
            plain()
        (task,) = Flowcept.db.task_query({"workflow_id": f.workflow_id})
        assert not any(k.startswith("telemetry") for k in task)


def test_missing_psutil_fails_at_start(tmp_path):
    """Telemetry settings without psutil installed: Flowcept() start fails once, naming the extra."""
    settings = tmp_path / "s.yaml"
    settings.write_text(FULL)
    code = ("import sys; sys.modules['psutil'] = None\n"
            "from flowcept import Flowcept\n"
            "from flowcept.errors import BackendUnavailableError\n"
            "try:\n"
            "    Flowcept().start()\n"
            "except BackendUnavailableError as e:\n"
            "    print('ERR', e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                         env={"FLOWCEPT_SETTINGS_PATH": str(settings), "HOME": str(tmp_path),
                              "PATH": "/usr/bin:/bin"})
    assert out.stdout.startswith("ERR ") and "flowcept[telemetry]" in out.stdout, out.stderr


def test_loop_capture_telemetry_override():
    """FlowceptLoop(capture_telemetry=True) records end-of-iteration telemetry with telemetry off in settings."""
    from flowcept import FlowceptLoop

    with Flowcept() as f:
        for _ in FlowceptLoop(range(2), loop_name="tl", capture_telemetry=True):
            pass
        for _ in FlowceptLoop(range(2), loop_name="plain"):
            pass
    tasks = Flowcept.db.task_query({"workflow_id": f.workflow_id})
    with_tel = {t["activity_id"]: "telemetry_at_end" in t for t in tasks}
    assert with_tel == {"tl_iteration": True, "plain_iteration": False} and len(tasks) == 4
