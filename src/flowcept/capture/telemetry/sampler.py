"""TelemetrySampler: one snapshot of the enabled blocks (reference layout 7.1), cheap enough for every task.

::

    make_sampler(cfg) ──▶ TelemetrySampler(blocks)          built once per controller; static parts read here
                               │ snapshot()                 any thread; never raises
                               ├─ cpu      /proc/stat        (psutil off Linux)   percent = delta since last snapshot
                               ├─ process  psutil.Process    one persistent object, rebuilt after fork
                               ├─ memory   /proc/meminfo     (psutil off Linux)
                               ├─ disk     statvfs + /proc/diskstats
                               ├─ network  /proc/net/dev
                               └─ gpu      NVML / amdsmi     (gpu.py)

A block that fails is logged once and left out of that snapshot; the others are unaffected.
"""

from __future__ import annotations

import logging
import os
import time

from flowcept.capture.telemetry import _procfs
from flowcept.capture.telemetry.gpu import make_gpu_reader
from flowcept.errors import BackendUnavailableError

logger = logging.getLogger("flowcept")

FLAGS = ("cpu", "per_cpu", "process_info", "mem", "disk", "network", "machine_info")
# What `capture_telemetry=True` turns on when the settings leave telemetry off.
DEFAULT_FLAGS = {"cpu": True, "process_info": True, "mem": True, "disk": True, "network": True}


def read_config(cfg) -> tuple[dict[str, bool], list[str] | None]:
    """Normalize a settings object, a dict, or a bool override into ({flag: bool}, gpu metric names)."""
    if cfg is None or cfg is False:
        return {name: False for name in FLAGS}, None
    if cfg is True:
        return {name: DEFAULT_FLAGS.get(name, False) for name in FLAGS}, None
    if isinstance(cfg, dict):
        if cfg.get("capture_telemetry") is True and not any(cfg.get(n) for n in FLAGS):
            return read_config(True)
        get = cfg.get
    else:
        if getattr(cfg, "enabled", True) is False:
            return {name: False for name in FLAGS}, None

        def get(name, default=None):
            return getattr(cfg, name, default)
    flags = {name: bool(get(name, False)) for name in FLAGS}
    gpu = get("gpu", None)
    if gpu is True:
        gpu = ["used", "total", "utilization", "memory_utilization", "temperature", "power", "name", "id"]
    elif isinstance(gpu, str):
        gpu = [gpu]
    return flags, (list(gpu) if gpu else None)


def import_psutil():
    try:
        import psutil
    except ImportError as exc:
        raise BackendUnavailableError("Telemetry capture", "telemetry") from exc
    return psutil


def make_sampler(cfg) -> TelemetrySampler | None:
    """Build the sampler for a ``telemetry_capture`` settings object.

    Args:
        cfg: the settings' ``telemetry_capture`` (bool attributes ``cpu, per_cpu, process_info, mem, disk,
            network, machine_info``, ``gpu`` None or a list of metric names, optional ``enabled``), a dict
            with those keys, or ``True`` for a per-task ``capture_telemetry=True`` override (cpu, process,
            memory, disk, network).

    Returns:
        A sampler, or None when no snapshot block is enabled (or the only one, gpu, finds no GPU).

    Raises:
        BackendUnavailableError: psutil is not installed and an enabled metric needs it
            (``pip install 'flowcept[telemetry]'``).
    """
    flags, gpu = read_config(cfg)
    if any(flags.values()):
        import_psutil()  # fail at start, once, naming the extra; never mid-run
    blocks = [b for b, f in (("cpu", "cpu"), ("process", "process_info"), ("memory", "mem"),
                             ("disk", "disk"), ("network", "network")) if flags[f]]
    if flags["per_cpu"] and "cpu" not in blocks:
        blocks.insert(0, "cpu")
    if not blocks and not gpu:
        return None
    sampler = TelemetrySampler(blocks, per_cpu=flags["per_cpu"], gpu_metrics=gpu)
    return sampler if sampler.blocks else None  # e.g. GPU-only on a machine without a GPU


class TelemetrySampler:
    """Reads the enabled telemetry blocks; ``snapshot()`` is safe from any thread and never raises.

    Args:
        blocks: names among ``cpu, process, memory, disk, network``.
        per_cpu: add ``times_per_cpu`` and ``percent_per_cpu`` to the cpu block.
        gpu_metrics: GPU metric names, or None for no gpu block.
        procfs: read cpu/memory/disk/network from /proc (default: when /proc is there); False forces psutil.
    """

    def __init__(self, blocks, per_cpu: bool = False, gpu_metrics: list[str] | None = None,
                 procfs: bool | None = None):
        self.per_cpu = per_cpu
        self._failed: set[str] = set()
        self._readers: list[tuple[str, object]] = []
        self._psutil = import_psutil() if blocks else None
        if procfs is None:
            procfs = os.path.exists("/proc/stat") and os.path.exists("/proc/meminfo")
        self._procfs = procfs
        for name in blocks:
            try:
                self._readers.append((name, getattr(self, f"_setup_{name}")()))
            except Exception as exc:  # noqa: BLE001 - a block that cannot start is left out, not fatal
                self._log_once(name, exc)
        if gpu_metrics:
            reader = make_gpu_reader(gpu_metrics)
            if reader is not None:
                self._readers.append(("gpu", reader.read))

    @property
    def blocks(self) -> tuple[str, ...]:
        """Names of the blocks each snapshot tries to read."""
        return tuple(name for name, _ in self._readers)

    def snapshot(self) -> dict:
        """One reading of every enabled block plus a ``timestamp`` (epoch seconds)."""
        out = {"timestamp": time.time()}
        for name, read in self._readers:
            try:
                out[name] = read()
            except Exception as exc:  # noqa: BLE001 - each block fails on its own
                self._log_once(name, exc)
        return out

    def close(self) -> None:
        """Release the /proc descriptors; the sampler must not be used afterwards."""
        for attr in ("_stat", "_meminfo", "_diskstats", "_netdev"):
            f = getattr(self, attr, None)
            if f is not None:
                f.close()

    def _log_once(self, block: str, exc: BaseException) -> None:
        if block not in self._failed:
            self._failed.add(block)
            logger.warning("telemetry block %r unavailable, left out of snapshots: %r", block, exc)

    # --- cpu -----------------------------------------------------------------------------------------------

    def _setup_cpu(self):
        ps = self._psutil
        try:
            freq = ps.cpu_freq()  # tens of microseconds and nearly static: read once
            self._freq = round(freq.current, 1) if freq else None
        except Exception:  # noqa: BLE001 - some VMs and containers expose no frequency
            self._freq = None
        if self._procfs:
            self._stat = _procfs.ProcFile("/proc/stat")
            total, cpus = _procfs.parse_stat(self._stat.read(), self.per_cpu)
            # First snapshot's percent is measured against this baseline; until a tick elapses it is the
            # average since boot, never a meaningless 0.0.
            self._cpu_last = (total, cpus)
            b, t = _procfs.busy_total(total)
            self._cpu_pct = round(b * 100.0 / t, 1) if t else 0.0
            self._cpu_pct_per = [round(bb * 100.0 / tt, 1) if tt else 0.0
                                 for bb, tt in map(_procfs.busy_total, cpus)]
            return self._read_cpu_procfs
        ps.cpu_percent(None)
        if self.per_cpu:
            ps.cpu_percent(None, percpu=True)
        return self._read_cpu_psutil

    def _read_cpu_procfs(self) -> dict:
        total, cpus = _procfs.parse_stat(self._stat.read(), self.per_cpu)
        prev_total, prev_cpus = self._cpu_last
        self._cpu_last = (total, cpus)
        pct = _procfs.percent_between(prev_total, total)
        if pct is not None:
            self._cpu_pct = pct
        out = {"times_avg": _procfs.ticks_to_times(total), "percent_all": self._cpu_pct, "frequency": self._freq}
        if self.per_cpu:
            per = self._cpu_pct_per
            if len(prev_cpus) == len(cpus):
                per = [p if p is not None else old
                       for p, old in zip(map(_procfs.percent_between, prev_cpus, cpus), per)]
            self._cpu_pct_per = per
            out["times_per_cpu"] = [_procfs.ticks_to_times(t) for t in cpus]
            out["percent_per_cpu"] = per
        return out

    def _read_cpu_psutil(self) -> dict:
        ps = self._psutil
        out = {"times_avg": ps.cpu_times()._asdict(), "percent_all": ps.cpu_percent(None),
               "frequency": self._freq}
        if self.per_cpu:
            out["times_per_cpu"] = [t._asdict() for t in ps.cpu_times(percpu=True)]
            out["percent_per_cpu"] = ps.cpu_percent(None, percpu=True)
        return out

    # --- process -------------------------------------------------------------------------------------------

    def _setup_process(self):
        self._proc = None
        self._proc_pid = -1
        self._new_process()
        return self._read_process

    def _new_process(self):
        # One persistent object: psutil computes cpu_percent against the previous call on the same object,
        # so a fresh Process per sample always reports 0.0. After fork the pid changes and so must the object.
        ps = self._psutil
        proc = ps.Process()
        proc.cpu_percent(None)
        self._proc_static = {"pid": proc.pid, "executable": _safe(proc.exe), "cmd_line": _safe(proc.cmdline)}
        self._mem_total = ps.virtual_memory().total
        self._proc, self._proc_pid = proc, proc.pid

    def _read_process(self) -> dict:
        if os.getpid() != self._proc_pid:
            self._new_process()
        proc = self._proc
        out = dict(self._proc_static)
        with proc.oneshot():
            mem = proc.memory_info()._asdict()
            out["memory"] = mem
            out["memory_percent"] = round(mem["rss"] * 100.0 / self._mem_total, 3) if self._mem_total else None
            out["cpu_times"] = proc.cpu_times()._asdict()
            out["cpu_percent"] = proc.cpu_percent(None)
            out["num_threads"] = proc.num_threads()
            out["num_ctx_switches"] = proc.num_ctx_switches()._asdict()
            if hasattr(proc, "cpu_num"):
                out["cpu_number"] = proc.cpu_num()
            if hasattr(proc, "num_fds"):
                out["num_open_file_descriptors"] = proc.num_fds()
            if hasattr(proc, "io_counters"):
                try:
                    out["io_counters"] = proc.io_counters()._asdict()
                except (self._psutil.AccessDenied, OSError):
                    pass
            # num_open_files (readlink per descriptor) and num_connections (parses every /proc/net table)
            # cost milliseconds on busy processes; they belong to machine_info's process block, not per task.
        return out

    # --- memory --------------------------------------------------------------------------------------------

    def _setup_memory(self):
        if self._procfs:
            self._meminfo = _procfs.ProcFile("/proc/meminfo")
            self._read_memory_procfs()
            return self._read_memory_procfs
        return self._read_memory_psutil

    def _read_memory_procfs(self) -> dict:
        mi = _procfs.parse_meminfo(self._meminfo.read())
        return {"virtual": _procfs.virtual_memory(mi), "swap": _procfs.swap_memory(mi)}

    def _read_memory_psutil(self) -> dict:
        ps = self._psutil
        return {"virtual": ps.virtual_memory()._asdict(), "swap": ps.swap_memory()._asdict()}

    # --- disk ----------------------------------------------------------------------------------------------

    def _setup_disk(self):
        if self._procfs and os.path.exists("/proc/diskstats"):
            self._diskstats = _procfs.ProcFile("/proc/diskstats")
            self._devices = _procfs.storage_devices()
            self._read_disk_procfs()
            return self._read_disk_procfs
        return self._read_disk_psutil

    def _read_disk_procfs(self) -> dict:
        total, per = _procfs.parse_diskstats(self._diskstats.read(), self._devices)
        fields = _procfs.DISK_FIELDS
        out = {"disk_usage": _procfs.disk_usage("/"), "io_sum": dict(zip(fields, total))}
        if len(per) > 1:
            out["io_per_disk"] = {name: dict(zip(fields, c)) for name, c in per.items()}
        return out

    def _read_disk_psutil(self) -> dict:
        ps = self._psutil
        out = {"disk_usage": ps.disk_usage("/")._asdict()}
        per = ps.disk_io_counters(perdisk=True) or {}
        if per:
            keys = next(iter(per.values()))._fields
            out["io_sum"] = {k: sum(getattr(c, k) for c in per.values()) for k in keys}
            moving = {n: c._asdict() for n, c in per.items() if c.read_count or c.write_count}
            if len(moving) > 1:
                out["io_per_disk"] = moving
        return out

    # --- network -------------------------------------------------------------------------------------------

    def _setup_network(self):
        if self._procfs and os.path.exists("/proc/net/dev"):
            self._netdev = _procfs.ProcFile("/proc/net/dev")
            self._read_network_procfs()
            return self._read_network_procfs
        return self._read_network_psutil

    def _read_network_procfs(self) -> dict:
        per = _procfs.parse_net_dev(self._netdev.read())
        total = [sum(col) for col in zip(*per.values())] if per else [0] * 8
        fields = _procfs.NET_FIELDS
        return {"netio_sum": dict(zip(fields, total)),
                # only interfaces with traffic both ways, as the reference does
                "netio_per_interface": {n: dict(zip(fields, c)) for n, c in per.items() if c[0] and c[1]}}

    def _read_network_psutil(self) -> dict:
        per = self._psutil.net_io_counters(pernic=True)  # one read; the sum is ours
        fields = _procfs.NET_FIELDS
        total = {k: sum(getattr(c, k) for c in per.values()) for k in fields}
        return {"netio_sum": total,
                "netio_per_interface": {n: c._asdict() for n, c in per.items() if c.bytes_sent and c.bytes_recv}}


def _safe(fn):
    try:
        return fn()
    except Exception:  # noqa: BLE001 - exe/cmdline may be denied in some sandboxes
        return None
