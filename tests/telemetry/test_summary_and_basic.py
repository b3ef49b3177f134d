"""summarize(), basic_snapshot(), machine_info(), and the behaviour without psutil."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from flowcept.capture.telemetry import basic_snapshot, machine_info, summarize

SRC = str(Path(__file__).resolve().parents[2] / "src")


class TestSummarize:
    def test_reference_blocks(self):
        """Each sub-block is end minus start with the reference 1.8 names."""
        start = {"timestamp": 10.0,
                 "cpu": {"percent_all": 10.0, "times_avg": {"user": 1.0, "system": 2.0, "idle": 3.0}},
                 "memory": {"virtual": {"used": 100, "percent": 1.0}, "swap": {"used": 5}},
                 "disk": {"io_sum": {"read_bytes": 1, "write_bytes": 2, "read_count": 3, "write_count": 4}},
                 "network": {"netio_sum": {"bytes_sent": 1, "bytes_recv": 2, "packets_sent": 3, "packets_recv": 4}},
                 "process": {"cpu_times": {"user": 0.5, "system": 0.1}, "memory": {"rss": 1000},
                             "io_counters": {"read_bytes": 0, "write_bytes": 10}}}
        end = {"timestamp": 12.5,
               "cpu": {"percent_all": 60.0, "times_avg": {"user": 2.5, "system": 2.25, "idle": 4.0}},
               "memory": {"virtual": {"used": 300, "percent": 2.5}, "swap": {"used": 5}},
               "disk": {"io_sum": {"read_bytes": 11, "write_bytes": 22, "read_count": 33, "write_count": 44}},
               "network": {"netio_sum": {"bytes_sent": 11, "bytes_recv": 22, "packets_sent": 33, "packets_recv": 44}},
               "process": {"cpu_times": {"user": 1.5, "system": 0.1}, "memory": {"rss": 5000},
                           "io_counters": {"read_bytes": 7, "write_bytes": 10}}}
        assert summarize(start, end) == {
            "duration_sec": 2.5,
            "cpu": {"percent_all_diff": 50.0, "user_time_diff": 1.5, "system_time_diff": 0.25, "idle_time_diff": 1.0},
            "memory": {"used_mem_diff": 200, "percent_diff": 1.5, "swap_used_diff": 0},
            "disk": {"read_bytes_diff": 10, "write_bytes_diff": 20, "read_count_diff": 30, "write_count_diff": 40},
            "network": {"bytes_sent_diff": 10, "bytes_recv_diff": 20, "packets_sent_diff": 30,
                        "packets_recv_diff": 40},
            "process": {"cpu_user_time_diff": 1.0, "cpu_system_time_diff": 0.0, "rss_diff": 4000,
                        "io_read_bytes_diff": 7, "io_write_bytes_diff": 0},
        }

    def test_blocks_only_when_both_sides_have_them(self):
        """A block missing on either side is left out; no tags are ever produced."""
        start = {"cpu": {"percent_all": 1.0}, "memory": {"virtual": {"used": 1}}}
        end = {"timestamp": 1.0, "cpu": {"percent_all": 3.0}, "disk": {"io_sum": {"read_bytes": 1}}}
        assert summarize(start, end) == {"cpu": {"percent_all_diff": 2.0}}
        assert summarize({}, {}) == {}


class TestBasicSnapshot:
    def test_stdlib_snapshot_sees_cpu_and_memory(self):
        """basic_snapshot reports process CPU time and RSS that move with real work."""
        a = basic_snapshot()
        end, x = os.times().user + 0.25, 0
        while os.times().user < end:  # user time: arithmetic, a clock read only every 50k steps
            for i in range(50_000):
                x += i * i
        buf = bytearray(100_000_000)
        buf[::4096] = b"\x01" * len(range(0, len(buf), 4096))
        b = basic_snapshot()
        s = summarize(a, b)
        assert s["process"]["cpu_user_time_diff"] > 0.15
        assert s["process"]["rss_diff"] >= 80_000_000
        assert s["duration_sec"] > 0.2
        if sys.platform.startswith("linux"):
            assert s["cpu"]["user_time_diff"] > 0.15
            assert b["memory"]["virtual"]["total"] > 0
        del buf


class TestMachineInfo:
    def test_environment_left_out_unless_asked_and_redacted(self, monkeypatch):
        """Environment variables appear only on request, with secret-looking ones redacted."""
        monkeypatch.setenv("MY_API_TOKEN", "t0k")
        monkeypatch.setenv("DB_PASSWORD", "pw")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3")
        monkeypatch.setenv("SSH_PASSWD", "pw2")
        monkeypatch.setenv("GCP_CREDENTIALS", "c")
        monkeypatch.setenv("PLAIN_SETTING", "visible")
        info = machine_info(None)
        assert "environment" not in info
        env = machine_info(None, include_env=True)["environment"]
        for key in ("MY_API_TOKEN", "DB_PASSWORD", "AWS_SECRET_ACCESS_KEY", "SSH_PASSWD", "GCP_CREDENTIALS"):
            assert env[key] == "REDACTED"
        assert env["PLAIN_SETTING"] == "visible"
        assert "t0k" not in json.dumps(machine_info(None, include_env=True))

    def test_describes_the_machine(self):
        """machine_info carries platform, cpu model, cores, memory, disk, hostname."""
        info = machine_info({"gpu": None})
        assert info["platform"]["system"]
        assert info["hostname"]
        assert info["cores"]["logical"] == os.cpu_count()
        assert info["memory"]["virtual"]["total"] > 0
        assert info["disk"]["total"] > 0
        assert info["cpu"].get("brand_raw") or info["cpu"].get("arch")
        json.dumps(info)


def run_without_psutil(code: str) -> subprocess.CompletedProcess:
    """Run code in a fresh interpreter where ``import psutil`` fails (a None entry in sys.modules)."""
    shim = "import sys; sys.modules['psutil'] = None\n"
    env = dict(os.environ, PYTHONPATH=SRC)
    return subprocess.run([sys.executable, "-c", shim + textwrap.dedent(code)], env=env,
                          capture_output=True, text=True, timeout=60)


class TestWithoutPsutil:
    def test_make_sampler_names_the_extra_and_basic_snapshot_works(self):
        """Without psutil: one BackendUnavailableError naming flowcept[telemetry]; the stdlib paths still work."""
        proc = run_without_psutil("""
            import json
            from flowcept.errors import BackendUnavailableError
            from flowcept.capture.telemetry import make_sampler, basic_snapshot, machine_info
            try:
                make_sampler({"cpu": True, "mem": True})
            except BackendUnavailableError as exc:
                print("ERROR:", exc)
            snap = basic_snapshot()
            assert snap["process"]["memory"]["rss"] > 0, snap
            assert snap["process"]["cpu_times"]["user"] >= 0
            assert make_sampler({"gpu": ["used"]}) is None   # GPU-only needs no psutil; no GPU here
            assert make_sampler(None) is None
            info = machine_info(None)
            print("INFO:", json.dumps(sorted(info)))
        """)
        assert proc.returncode == 0, proc.stderr
        assert "ERROR:" in proc.stdout and "flowcept[telemetry]" in proc.stdout
        assert '"hostname"' in proc.stdout
