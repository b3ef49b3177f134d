"""``machine_info`` for the workflow record (reference 7.3), with environment variables opt-in and redacted."""

from __future__ import annotations

import functools
import getpass
import os
import platform
import re

from flowcept.capture.telemetry import _procfs

_SECRET = re.compile(r"token|secret|password|passwd|key|credential", re.IGNORECASE)
REDACTED = "REDACTED"


def redact_environment(env) -> dict:
    """A copy of ``env`` with the values of secret-looking keys replaced by ``"REDACTED"``."""
    return {k: (REDACTED if _SECRET.search(k) else v) for k, v in env.items()}


@functools.lru_cache(maxsize=1)
def cpu_description() -> dict:
    """CPU model and features: py-cpuinfo when installed (it takes about a second, hence the cache),
    else /proc/cpuinfo and :mod:`platform`."""
    try:
        import cpuinfo

        return dict(cpuinfo.get_cpu_info())
    except Exception:  # noqa: BLE001 - ImportError, or py-cpuinfo failing on an odd platform
        pass
    out = {"arch": platform.machine(), "brand_raw": platform.processor() or None, "count": os.cpu_count()}
    try:
        for line in _procfs.read_file("/proc/cpuinfo").decode(errors="replace").splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key == "model name" and not out.get("brand_raw"):
                out["brand_raw"] = value.strip()
            elif key == "vendor_id":
                out["vendor_id_raw"] = value.strip()
            elif key == "flags":
                out["flags"] = value.split()
                break
    except OSError:
        pass
    return out


def _login_name():
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no passwd entry in some containers
        return None


def _cfg_gpu(cfg):
    if cfg is None or isinstance(cfg, bool):
        return None
    return cfg.get("gpu") if isinstance(cfg, dict) else getattr(cfg, "gpu", None)


def machine_info(cfg=None, include_env: bool = False) -> dict:
    """Describe this machine once per workflow.

    Args:
        cfg: the ``telemetry_capture`` settings (only ``gpu`` is read: GPUs are listed when it is set).
        include_env: add ``environment`` (all variables, secret-looking ones redacted).

    Returns:
        ``{memory, disk, platform, cpu, cores, network, hostname, login_name, process?, gpu?, environment?}``.
        Works without psutil (fewer keys).
    """
    from flowcept._runtime import hostname

    u = platform.uname()
    out: dict = {
        "platform": {"system": u.system, "node": u.node, "release": u.release, "version": u.version,
                     "machine": u.machine, "processor": u.processor},
        "cpu": cpu_description(),
        "hostname": hostname(),
        "login_name": _login_name(),
    }
    try:
        import psutil
    except ImportError:
        psutil = None
    if psutil is not None:
        out["memory"] = {"virtual": psutil.virtual_memory()._asdict(), "swap": psutil.swap_memory()._asdict()}
        out["disk"] = psutil.disk_usage("/")._asdict()
        out["cores"] = {"logical": psutil.cpu_count(logical=True), "physical": psutil.cpu_count(logical=False)}
        out["network"] = {
            name: [{"family": getattr(a.family, "name", str(a.family)), "address": a.address,
                    "netmask": a.netmask, "broadcast": a.broadcast, "ptp": a.ptp} for a in addrs]
            for name, addrs in psutil.net_if_addrs().items()}
        try:
            p = psutil.Process()
            with p.oneshot():
                out["process"] = {"pid": p.pid, "executable": p.exe(), "cmd_line": p.cmdline(),
                                  "memory": p.memory_info()._asdict(), "num_threads": p.num_threads(),
                                  "num_open_files": len(p.open_files()),
                                  "num_connections": len(p.net_connections())}
        except Exception:  # noqa: BLE001 - access denied in some sandboxes
            pass
    else:
        out["cores"] = {"logical": os.cpu_count(), "physical": None}
        try:
            mi = _procfs.parse_meminfo(_procfs.read_file("/proc/meminfo"))
            out["memory"] = {"virtual": _procfs.virtual_memory(mi), "swap": _procfs.swap_memory(mi)}
        except (OSError, KeyError, ValueError):
            pass
        try:
            out["disk"] = _procfs.disk_usage("/")
        except OSError:
            pass
    gpu = _cfg_gpu(cfg)
    if gpu:
        from flowcept.capture.telemetry.gpu import make_gpu_reader

        reader = make_gpu_reader(gpu if not isinstance(gpu, bool) else ["name", "id", "total"])
        if reader is not None:
            out["gpu"] = reader.describe()
    if include_env:
        out["environment"] = redact_environment(os.environ)
    return out
