"""GPU block: NVIDIA through NVML (nvidia-ml-py) or AMD through amdsmi, whichever is importable and sees a GPU.

Library init and device handles happen once, in :func:`make_gpu_reader`; ``read()`` only queries metrics.
No vendor library or no visible GPU leaves the gpu block out with one info log, never an error.
"""

from __future__ import annotations

import logging
import os

logger = logging.getLogger("flowcept")

NVIDIA_METRICS = ("used", "total", "utilization", "memory_utilization", "temperature", "power", "name", "id")
AMD_METRICS = ("used", "activity", "power", "temperature", "others", "id")
_ALIASES = {"activity": "utilization"}  # the AMD name, accepted for NVIDIA too
_STATIC = ("name", "id", "total")

_cache: dict = {}  # one reader per metric list and process: NVML handles are process-wide anyway


def make_gpu_reader(metrics) -> NvidiaGpuReader | AmdGpuReader | None:
    """A reader for the visible GPUs, or None (logged once at info level) when there is none."""
    key = (os.getpid(), tuple(metrics))
    if key in _cache:
        return _cache[key]
    reader, why = None, None
    for cls in (AmdGpuReader, NvidiaGpuReader):  # AMD first, as the reference does
        try:
            reader = cls.create(metrics)
        except Exception as exc:  # noqa: BLE001 - a broken driver is "no GPU" here, not a failure
            why = f"{cls.vendor}: {exc!r}"
            reader = None
        if reader is not None:
            break
    if reader is None and "gpu" not in _cache:
        _cache["gpu"] = True
        logger.info("GPU telemetry requested but no GPU is visible (%s); the gpu block is left out",
                    why or "neither nvidia-ml-py nor amdsmi is installed, or no device")
    _cache[key] = reader
    return reader


def visible_indices(env_value: str | None, count: int) -> list[int] | list[str]:
    """Device indices (or UUID strings) named by a *_VISIBLE_DEVICES value, the way CUDA reads it.

    Unset: every device. Empty: none. Integers: those, stopping at the first invalid one. Anything else
    (``GPU-<uuid>``, ``MIG-...``): returned as strings for the caller to resolve by UUID.
    """
    if env_value is None:
        return list(range(count))
    items = [s.strip() for s in env_value.split(",") if s.strip()]
    out: list = []
    for item in items:
        try:
            i = int(item)
        except ValueError:
            return items if not out else out
        if i < 0 or i >= count:
            break  # CUDA ignores everything from the first invalid index on
        out.append(i)
    return out


class NvidiaGpuReader:
    """NVML metrics for the GPUs this process may use (``CUDA_VISIBLE_DEVICES``), keyed ``gpu_<logical index>``."""

    vendor = "nvidia"

    @classmethod
    def create(cls, metrics):
        try:
            import pynvml
        except ImportError:
            return None
        pynvml.nvmlInit()
        count = pynvml.nvmlDeviceGetCount()
        handles = []
        for item in visible_indices(os.environ.get("CUDA_VISIBLE_DEVICES"), count):
            if isinstance(item, int):
                handles.append(pynvml.nvmlDeviceGetHandleByIndex(item))
            else:
                try:
                    handles.append(pynvml.nvmlDeviceGetHandleByUUID(item))
                except Exception:  # noqa: BLE001 - MIG ids or short UUIDs: fall back to every device
                    handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
                    break
        if not handles:
            return None
        return cls(pynvml, handles, metrics)

    def __init__(self, nvml, handles, metrics):
        self._nvml = nvml
        self._handles = handles
        wanted = [_ALIASES.get(m, m) for m in metrics]
        self._metrics = [m for m in NVIDIA_METRICS if m in wanted]
        self._failed: set[str] = set()
        self._static = []
        for h in handles:  # name, UUID and total memory never change: read once
            static = {}
            for m in _STATIC:
                if m in self._metrics or m == "total":
                    value = self._query(h, m)
                    if value is not None:
                        static[m] = value
            self._static.append(static)
        self._dynamic = [m for m in self._metrics if m not in _STATIC]

    def _query(self, h, metric):
        nvml = self._nvml
        try:
            if metric == "used":
                return nvml.nvmlDeviceGetMemoryInfo(h).used
            if metric == "total":
                return nvml.nvmlDeviceGetMemoryInfo(h).total
            if metric == "utilization":
                return nvml.nvmlDeviceGetUtilizationRates(h).gpu
            if metric == "memory_utilization":
                return nvml.nvmlDeviceGetUtilizationRates(h).memory
            if metric == "temperature":
                return nvml.nvmlDeviceGetTemperature(h, nvml.NVML_TEMPERATURE_GPU)
            if metric == "power":
                return nvml.nvmlDeviceGetPowerUsage(h)  # milliwatts
            if metric == "name":
                return _text(nvml.nvmlDeviceGetName(h))
            if metric == "id":
                return _text(nvml.nvmlDeviceGetUUID(h))
        except Exception as exc:  # noqa: BLE001 - e.g. NVML_ERROR_NOT_SUPPORTED for power on some boards
            if metric not in self._failed:
                self._failed.add(metric)
                logger.info("GPU metric %r unavailable: %r", metric, exc)
        return None

    def read(self) -> dict:
        out = {}
        for i, h in enumerate(self._handles):
            d = {m: v for m, v in self._static[i].items() if m in self._metrics}
            for m in self._dynamic:
                if m not in self._failed:
                    value = self._query(h, m)
                    if value is not None:
                        d[m] = value
            out[f"gpu_{i}"] = d
        return out

    def describe(self) -> list[dict]:
        """Static description of each visible GPU (for machine_info)."""
        return [dict(s) for s in self._static]


class AmdGpuReader:
    """amdsmi metrics (reference key set) for the GPUs named by ``ROCR_VISIBLE_DEVICES``."""

    vendor = "amd"

    @classmethod
    def create(cls, metrics):
        try:
            import amdsmi
        except ImportError:
            return None
        amdsmi.amdsmi_init()
        handles = amdsmi.amdsmi_get_processor_handles()
        picked = visible_indices(os.environ.get("ROCR_VISIBLE_DEVICES"), len(handles))
        handles = [handles[i] for i in picked if isinstance(i, int)] or (handles if picked else [])
        if not handles:
            return None
        return cls(amdsmi, handles, metrics)

    def __init__(self, smi, handles, metrics):
        self._smi = smi
        self._handles = handles
        self._metrics = [m for m in AMD_METRICS if m in metrics]
        self._failed: set[str] = set()
        self._ids = [self._query(h, "id") for h in handles]

    def _query(self, h, metric):
        smi = self._smi
        try:
            if metric == "used":
                return smi.amdsmi_get_gpu_memory_usage(h, smi.AmdSmiMemoryType.VRAM)
            if metric == "activity":
                return smi.amdsmi_get_gpu_activity(h)
            if metric == "power":
                power = smi.amdsmi_get_power_info(h)
                energy = smi.amdsmi_get_energy_count(h)
                return {"average_socket_power": power.get("average_socket_power"),
                        "energy_accumulator": energy.get("energy_accumulator")}
            if metric == "temperature":
                t = smi.AmdSmiTemperatureType
                cur = smi.AmdSmiTemperatureMetric.CURRENT
                out = {}
                # vrgfx/vrmem have no enum member in amdsmi; the board sensors below are the ones it names
                for key, kind in (("edge", "EDGE"), ("hotspot", "HOTSPOT"), ("mem", "VRAM"), ("hbm", "HBM_0")):
                    try:
                        out[key] = smi.amdsmi_get_temp_metric(h, getattr(t, kind), cur)
                    except Exception:  # noqa: BLE001 - sensors differ per board
                        pass
                try:
                    out["fan_speed"] = smi.amdsmi_get_gpu_fan_speed(h, 0)
                except Exception:  # noqa: BLE001
                    pass
                return out
            if metric == "others":
                m = smi.amdsmi_get_gpu_metrics_info(h)
                return {k: m.get(k) for k in ("current_gfxclk", "current_socclk", "current_uclk",
                                              "current_vclk0", "current_dclk0")}
            if metric == "id":
                return smi.amdsmi_get_gpu_device_uuid(h)
        except Exception as exc:  # noqa: BLE001
            if metric not in self._failed:
                self._failed.add(metric)
                logger.info("GPU metric %r unavailable: %r", metric, exc)
        return None

    def read(self) -> dict:
        out = {}
        for i, h in enumerate(self._handles):
            d = {"gpu_ix": i}
            for m in self._metrics:
                value = self._ids[i] if m == "id" else (None if m in self._failed else self._query(h, m))
                if value is not None:
                    d[m] = value
            out[f"gpu_{i}"] = d
        return out

    def describe(self) -> list[dict]:
        return [{"gpu_ix": i, "id": self._ids[i]} for i in range(len(self._handles))]


def _text(value):
    return value.decode() if isinstance(value, bytes) else value
