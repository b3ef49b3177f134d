"""Linux /proc readers (stdlib only): the cheap path behind the system-wide telemetry blocks.

psutil reads the same files, but opens each one per call and reads several more (``swap_memory`` parses
/proc/vmstat, ``cpu_percent`` re-reads /proc/stat); keeping one descriptor per file and ``pread``-ing it
at offset 0 makes the kernel regenerate the text without the open/close pair, which is most of the cost.
Field names and units follow psutil so both paths emit the same layout.
"""

from __future__ import annotations

import os

CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
SECTOR_SIZE = 512  # /proc/diskstats counts 512-byte sectors whatever the device's sector size

CPU_FIELDS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal", "guest", "guest_nice")


class ProcFile:
    """One /proc file kept open and re-read with ``pread`` (position-free, so safe across threads).

    Only for files whose content does not depend on the reading process (never ``/proc/self/*``): a
    descriptor inherited through ``fork`` still describes the parent's ``self``.
    """

    __slots__ = ("path", "_fd", "_size")

    def __init__(self, path: str):
        self.path = path
        self._fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        self._size = 1 << 14

    def read(self) -> bytes:
        fd = self._fd
        while True:
            data = os.pread(fd, self._size, 0)
            if len(data) < self._size:
                return data
            self._size *= 2  # the file outgrew the buffer (many CPUs or disks): read it whole next time

    def close(self) -> None:
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)

    def __del__(self):  # descriptors must not leak when samplers are rebuilt
        try:
            self.close()
        except Exception:  # noqa: BLE001
            pass


def read_file(path: str) -> bytes:
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.read(fd, 1 << 16)
    finally:
        os.close(fd)


# --- cpu ---------------------------------------------------------------------------------------------------

def parse_stat(data: bytes, per_cpu: bool) -> tuple[list[int], list[list[int]]]:
    """Tick counters of the ``cpu`` line and, if asked, of every ``cpuN`` line."""
    lines = data.split(b"\n", 1 if not per_cpu else -1)
    total = [int(x) for x in lines[0].split()[1:11]]
    cpus: list[list[int]] = []
    if per_cpu:
        for line in lines[1:]:
            if not line.startswith(b"cpu"):
                break
            cpus.append([int(x) for x in line.split()[1:11]])
    return total, cpus


def ticks_to_times(ticks: list[int]) -> dict:
    return {name: value / CLOCK_TICKS for name, value in zip(CPU_FIELDS, ticks)}


def busy_total(ticks: list[int]) -> tuple[int, int]:
    """(busy, total) ticks the way psutil counts them: guest time is already inside user time."""
    total = sum(ticks)
    if len(ticks) >= 10:
        total -= ticks[8] + ticks[9]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)
    return total - idle, total


def percent_between(prev: list[int], cur: list[int]) -> float | None:
    """CPU busy percent between two tick samples; None when no tick elapsed (a 10 ms granularity)."""
    b0, t0 = busy_total(prev)
    b1, t1 = busy_total(cur)
    dt = t1 - t0
    if dt <= 0:
        return None
    return round(min(100.0, max(0.0, (b1 - b0) * 100.0 / dt)), 1)


# --- memory ------------------------------------------------------------------------------------------------

_MEMINFO_KEYS = (b"MemTotal", b"MemFree", b"MemAvailable", b"Buffers", b"Cached", b"Active", b"Inactive",
                 b"SwapTotal", b"SwapFree", b"Shmem", b"Slab", b"SReclaimable")
_MEMINFO_NEEDLES = tuple((k, b"\n" + k + b":") for k in _MEMINFO_KEYS)


def parse_meminfo(data: bytes) -> dict[bytes, int]:
    """The /proc/meminfo lines the memory block uses, in bytes.

    Looking up a dozen keys with ``bytes.find`` costs a third of splitting all ~50 lines.
    """
    data = b"\n" + data  # every key, the first included, is then preceded by a newline
    out = {}
    for key, needle in _MEMINFO_NEEDLES:
        i = data.find(needle)
        if i >= 0:
            j = i + len(needle)
            out[key] = int(data[j:data.index(b"\n", j)].split()[0]) * 1024
    return out


def virtual_memory(mi: dict[bytes, int]) -> dict:
    total = mi[b"MemTotal"]
    free = mi.get(b"MemFree", 0)
    buffers = mi.get(b"Buffers", 0)
    cached = mi.get(b"Cached", 0) + mi.get(b"SReclaimable", 0)
    available = mi.get(b"MemAvailable")
    if available is None:  # kernels before 3.14
        available = free + buffers + cached
    elif available > total:  # LXC containers report host-sized values
        available = free
    used = total - available  # as psutil >= 6 and procps `free` compute it
    return {
        "total": total, "available": available,
        "percent": round((total - available) * 100.0 / total, 1) if total else 0.0,
        "used": used, "free": free,
        "active": mi.get(b"Active", 0), "inactive": mi.get(b"Inactive", 0),
        "buffers": buffers, "cached": cached,
        "shared": mi.get(b"Shmem", 0), "slab": mi.get(b"Slab", 0),
    }


def swap_memory(mi: dict[bytes, int]) -> dict:
    # sin/sout (pages swapped in/out) live in /proc/vmstat, a 4 KB file that would double the block's cost;
    # the psutil path reports them.
    total = mi.get(b"SwapTotal", 0)
    free = mi.get(b"SwapFree", 0)
    used = total - free
    return {"total": total, "used": used, "free": free,
            "percent": round(used * 100.0 / total, 1) if total else 0.0}


# --- disk --------------------------------------------------------------------------------------------------

DISK_FIELDS = ("read_count", "write_count", "read_bytes", "write_bytes", "read_time", "write_time",
               "read_merged_count", "write_merged_count", "busy_time")


def storage_devices() -> frozenset[bytes] | None:
    """Whole disks (what psutil sums): names under /sys/block; None when sysfs is not there."""
    try:
        return frozenset(name.replace("!", "/").encode() for name in os.listdir("/sys/block"))
    except OSError:
        return None


def parse_diskstats(data: bytes, devices: frozenset[bytes] | None) -> tuple[list[int], dict[str, list[int]]]:
    """(sum over whole disks, {disk: counters} for disks that moved at all), counters in DISK_FIELDS order."""
    total = [0] * 9
    per: dict[str, list[int]] = {}
    for line in data.split(b"\n"):
        head = line.split(None, 3)
        if len(head) < 4 or (devices is not None and head[2] not in devices):
            continue  # blank line, or a partition: it would count its disk's I/O twice
        f = head[3].split()
        if len(f) < 11:
            continue  # the 7-field partition format of old kernels
        reads, writes = int(f[0]), int(f[4])
        if not (reads or writes):
            continue  # idle loop/zram devices: nothing to add, nothing to report
        c = [reads, writes, int(f[2]) * SECTOR_SIZE, int(f[6]) * SECTOR_SIZE, int(f[3]), int(f[7]),
             int(f[1]), int(f[5]), int(f[9])]
        per[head[2].decode()] = c
        for i in range(9):
            total[i] += c[i]
    return total, per


def disk_usage(path: str = "/") -> dict:
    st = os.statvfs(path)
    total = st.f_blocks * st.f_frsize
    free = st.f_bavail * st.f_frsize
    used = (st.f_blocks - st.f_bfree) * st.f_frsize
    denom = used + free
    return {"total": total, "used": used, "free": free,
            "percent": round(used * 100.0 / denom, 1) if denom else 0.0}


# --- network -----------------------------------------------------------------------------------------------

NET_FIELDS = ("bytes_sent", "bytes_recv", "packets_sent", "packets_recv", "errin", "errout", "dropin", "dropout")


def parse_net_dev(data: bytes) -> dict[str, list[int]]:
    """{interface: counters in NET_FIELDS order}."""
    out = {}
    for line in data.split(b"\n")[2:]:
        name, sep, rest = line.partition(b":")
        if not sep:
            continue
        f = rest.split()
        out[name.strip().decode()] = [int(f[8]), int(f[0]), int(f[9]), int(f[1]), int(f[2]), int(f[10]),
                                      int(f[3]), int(f[11])]
    return out


# --- this process ------------------------------------------------------------------------------------------

def self_rss() -> int | None:
    try:
        return int(read_file("/proc/self/statm").split()[1]) * PAGE_SIZE
    except (OSError, ValueError, IndexError):
        return None


def self_io() -> dict | None:
    try:
        data = read_file("/proc/self/io")
    except OSError:
        return None
    out = {}
    for line in data.split(b"\n"):
        key, sep, value = line.partition(b":")
        if sep:
            out[key.decode()] = int(value)
    return {"read_count": out.get("syscr", 0), "write_count": out.get("syscw", 0),
            "read_bytes": out.get("read_bytes", 0), "write_bytes": out.get("write_bytes", 0),
            "read_chars": out.get("rchar", 0), "write_chars": out.get("wchar", 0)}
