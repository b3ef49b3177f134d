"""Telemetry sampler: real workloads move the right counters, and the layout matches reference 7.1."""

from __future__ import annotations

import logging
import os
import socket
import threading

import pytest

psutil = pytest.importorskip("psutil")

from flowcept.capture.telemetry import TelemetrySampler, make_sampler, summarize  # noqa: E402
from flowcept.capture.telemetry import gpu as gpu_mod  # noqa: E402

ALL = {"cpu": True, "per_cpu": True, "process_info": True, "mem": True, "disk": True, "network": True}


@pytest.fixture(name="sampler")
def fixture_sampler():
    s = make_sampler(ALL)
    yield s
    s.close()


def burn(seconds: float) -> None:
    """Spend ``seconds`` of *user* CPU time: pure arithmetic, checking the clock rarely (the clock
    read is a system call, and calling it every iteration turns the burn into system time)."""
    end = os.times().user + seconds
    x = 0
    while os.times().user < end:
        for i in range(50_000):
            x += i * i


class TestMakeSampler:
    def test_nothing_enabled_gives_none(self):
        """No enabled flag, a disabled section, None and False all mean no sampler."""
        assert make_sampler(None) is None
        assert make_sampler(False) is None
        assert make_sampler({"cpu": False, "gpu": None}) is None

        class Cfg:
            cpu = mem = True
            per_cpu = process_info = disk = network = machine_info = False
            gpu = None
            enabled = False
        assert make_sampler(Cfg()) is None

    def test_settings_object_and_override(self):
        """An attribute object picks its blocks; True (a capture_telemetry override) turns on the defaults."""
        class Cfg:
            cpu = mem = True
            per_cpu = process_info = disk = network = machine_info = False
            gpu = None
            enabled = True
        assert make_sampler(Cfg()).blocks == ("cpu", "memory")
        assert make_sampler(True).blocks == ("cpu", "process", "memory", "disk", "network")
        assert make_sampler({"capture_telemetry": True}).blocks == ("cpu", "process", "memory", "disk", "network")


class TestLayout:
    def test_every_enabled_block_has_the_reference_keys(self, sampler):
        """A snapshot carries timestamp, cpu, process, memory, disk and network with the 7.1 keys."""
        snap = sampler.snapshot()
        assert set(snap) == {"timestamp", "cpu", "process", "memory", "disk", "network"}
        cpu = snap["cpu"]
        assert {"user", "system", "idle", "iowait"} <= set(cpu["times_avg"])
        assert 0.0 <= cpu["percent_all"] <= 100.0
        assert len(cpu["times_per_cpu"]) == len(cpu["percent_per_cpu"]) == psutil.cpu_count()
        proc = snap["process"]
        assert proc["pid"] == os.getpid()
        assert {"rss", "vms"} <= set(proc["memory"])
        assert {"user", "system"} <= set(proc["cpu_times"])
        assert proc["num_threads"] >= 1
        assert snap["memory"]["virtual"]["total"] == psutil.virtual_memory().total
        assert {"total", "used", "free", "percent"} <= set(snap["memory"]["swap"])
        assert snap["disk"]["disk_usage"]["total"] == psutil.disk_usage("/").total
        assert set(snap["network"]["netio_sum"]) == {"bytes_sent", "bytes_recv", "packets_sent", "packets_recv",
                                                     "errin", "errout", "dropin", "dropout"}

    def test_first_percent_is_not_a_placeholder_zero(self):
        """The first snapshot's CPU percent is measured (since boot or since the sampler was made)."""
        s = make_sampler({"cpu": True})
        burn(0.05)
        assert s.snapshot()["cpu"]["percent_all"] > 0.0

    def test_procfs_and_psutil_paths_agree(self):
        """The /proc fast path reports what psutil reports, in the same layout."""
        fast = TelemetrySampler(["cpu", "memory", "disk", "network"], procfs=True).snapshot()
        slow = TelemetrySampler(["cpu", "memory", "disk", "network"], procfs=False).snapshot()
        assert set(fast["cpu"]["times_avg"]) == set(slow["cpu"]["times_avg"])
        assert fast["memory"]["virtual"]["total"] == slow["memory"]["virtual"]["total"]
        assert abs(fast["memory"]["virtual"]["used"] - slow["memory"]["virtual"]["used"]) < 100e6
        assert set(fast["memory"]["virtual"]) <= set(slow["memory"]["virtual"])
        assert set(fast["disk"]["io_sum"]) == set(slow["disk"]["io_sum"])
        ps_disk = psutil.disk_io_counters()
        if ps_disk is not None:
            assert abs(fast["disk"]["io_sum"]["write_bytes"] - ps_disk.write_bytes) < 50e6
        ps_net = psutil.net_io_counters()
        assert abs(fast["network"]["netio_sum"]["bytes_recv"] - ps_net.bytes_recv) < 10e6
        assert fast["disk"]["disk_usage"]["total"] == slow["disk"]["disk_usage"]["total"]


class TestRealWorkloads:
    def test_cpu_burn_shows_cpu_time_and_percent(self):
        """0.3 s of busy loop: process user time grows > 0.2 s and the CPU percents are high."""
        s = make_sampler({"cpu": True, "process_info": True})
        start = s.snapshot()
        burn(0.3)
        end = s.snapshot()
        summary = summarize(start, end)
        assert summary["process"]["cpu_user_time_diff"] > 0.2
        assert summary["cpu"]["user_time_diff"] > 0.2
        assert summary["duration_sec"] >= 0.25  # os.times() counts 10 ms ticks
        # one of this machine's cores was busy between the two samples (other load only adds to it)
        assert end["cpu"]["percent_all"] >= 100.0 / psutil.cpu_count() * 0.8
        # the process had the CPU for most of the wall time, even when sharing the machine with others
        assert end["process"]["cpu_percent"] >= 25.0

    def test_allocating_200mb_shows_rss(self):
        """A touched 200 MB buffer raises process RSS by at least 150 MB."""
        s = make_sampler({"mem": True, "process_info": True})
        start = s.snapshot()
        buf = bytearray(200_000_000)
        buf[::4096] = b"\x01" * len(range(0, len(buf), 4096))  # fault every page in
        end = s.snapshot()
        summary = summarize(start, end)
        assert summary["process"]["rss_diff"] >= 150_000_000
        assert set(summary["memory"]) == {"used_mem_diff", "percent_diff", "swap_used_diff"}
        del buf

    def test_writing_50mb_shows_disk_write_bytes(self, tmp_path):
        """50 MB written and fsynced show in the disk counters (where the kernel reports them)."""
        if psutil.disk_io_counters() is None:
            pytest.skip("the kernel reports no disk I/O counters here")
        s = make_sampler({"disk": True, "process_info": True})
        start = s.snapshot()
        with open(tmp_path / "blob.bin", "wb") as f:
            f.write(os.urandom(50_000_000))
            f.flush()
            os.fsync(f.fileno())
        end = s.snapshot()
        summary = summarize(start, end)
        if "io_counters" in end["process"]:
            assert summary["process"]["io_write_bytes_diff"] >= 40_000_000
        if summary["disk"]["write_bytes_diff"] == 0:
            pytest.skip(f"{tmp_path} is not on a block device with counters (tmpfs or overlay)")
        assert summary["disk"]["write_bytes_diff"] >= 40_000_000
        assert summary["disk"]["write_count_diff"] > 0

    def test_sending_10mb_over_loopback_shows_network_bytes(self):
        """10 MB sent over a loopback TCP socket show in bytes_sent and bytes_recv."""
        s = make_sampler({"network": True})
        server = socket.create_server(("127.0.0.1", 0))
        port = server.getsockname()[1]
        received = []

        def drain():
            conn, _ = server.accept()
            with conn:
                n = 0
                while chunk := conn.recv(1 << 20):
                    n += len(chunk)
                received.append(n)

        t = threading.Thread(target=drain)
        t.start()
        start = s.snapshot()
        with socket.create_connection(("127.0.0.1", port)) as c:
            c.sendall(b"x" * 10_000_000)
        t.join(10)
        server.close()
        end = s.snapshot()
        summary = summarize(start, end)
        assert received == [10_000_000]
        assert summary["network"]["bytes_sent_diff"] >= 10_000_000
        assert summary["network"]["bytes_recv_diff"] >= 10_000_000
        assert end["network"]["netio_per_interface"]["lo"]["bytes_sent"] >= 10_000_000


class TestRobustness:
    def test_failing_block_is_left_out_and_logged_once(self, caplog):
        """A block that raises is omitted from each snapshot, logged once; the others still come."""
        s = make_sampler({"cpu": True, "mem": True})
        s._meminfo.close()  # every later read of /proc/meminfo fails
        with caplog.at_level(logging.WARNING, logger="flowcept"):
            snaps = [s.snapshot() for _ in range(3)]
        assert all("memory" not in x and "cpu" in x for x in snaps)
        assert len([r for r in caplog.records if "memory" in r.getMessage()]) == 1

    def test_process_block_follows_fork(self):
        """After fork the process block describes the child, not the parent."""
        s = make_sampler({"process_info": True})
        s.snapshot()
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # child
            try:
                os.write(w, str(s.snapshot()["process"]["pid"]).encode())
            finally:
                os._exit(0)
        os.close(w)
        child_seen = int(os.read(r, 64))
        os.waitpid(pid, 0)
        os.close(r)
        assert child_seen == pid

    def test_no_gpu_leaves_block_out_with_one_info_log(self, caplog, monkeypatch):
        """Asking for GPU metrics without a vendor library or device gives no gpu block and one info line."""
        monkeypatch.setattr(gpu_mod, "_cache", {})
        if gpu_mod.make_gpu_reader(["used"]) is not None:
            pytest.skip("this machine has a GPU")
        monkeypatch.setattr(gpu_mod, "_cache", {})
        with caplog.at_level(logging.INFO, logger="flowcept"):
            a = make_sampler({"cpu": True, "gpu": ["used", "utilization"]})
            b = make_sampler({"cpu": True, "gpu": ["used"]})
        assert "gpu" not in a.snapshot() and "gpu" not in b.snapshot()
        assert len([r for r in caplog.records if "GPU" in r.getMessage()]) == 1
        assert make_sampler({"gpu": ["used"]}) is None


class TestVisibleDevices:
    @pytest.mark.parametrize(("value", "expected"), [
        (None, [0, 1, 2, 3]), ("", []), ("1,3", [1, 3]), ("2, 0", [2, 0]), ("0,7,1", [0]),
        ("GPU-abc,GPU-def", ["GPU-abc", "GPU-def"]), ("1,GPU-abc", [1]),
    ])
    def test_cuda_visible_devices(self, value, expected):
        """Integers pick devices (stopping at an invalid one, as CUDA does); UUIDs come back as strings."""
        assert gpu_mod.visible_indices(value, 4) == expected
