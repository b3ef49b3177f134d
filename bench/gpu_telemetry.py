"""GPU telemetry check: a small torch matmul workload on CUDA must show non-zero GPU memory and utilization.

Run: PYTHONPATH=src python bench/gpu_telemetry.py
Prints "SKIP: no CUDA device" and exits 0 without torch, CUDA or NVML.
"""

from __future__ import annotations

import json
import sys
import threading
import time


def main() -> int:
    try:
        import torch
    except ImportError:
        print("SKIP: no CUDA device (torch not installed)")
        return 0
    if not torch.cuda.is_available():
        print("SKIP: no CUDA device")
        return 0
    from flowcept.capture.telemetry import make_sampler, summarize

    metrics = ["used", "total", "utilization", "memory_utilization", "temperature", "power", "name", "id"]
    sampler = make_sampler({"gpu": metrics, "cpu": True, "mem": True, "process_info": True})
    if sampler is None or "gpu" not in sampler.blocks:
        print("FAIL: a CUDA device is visible to torch but the sampler has no gpu block "
              "(is nvidia-ml-py installed?)")
        return 1

    start = sampler.snapshot()
    print("start:", json.dumps(start["gpu"]))
    a = torch.randn(8192, 8192, device="cuda")
    b = torch.randn(8192, 8192, device="cuda")
    stop = threading.Event()

    def work():
        while not stop.is_set():
            for _ in range(20):
                a.matmul(b)
            torch.cuda.synchronize()

    t = threading.Thread(target=work)
    t.start()
    samples = []
    try:
        deadline = time.time() + 3.0
        while time.time() < deadline:  # NVML utilization is averaged over its own sample period
            time.sleep(0.25)
            samples.append(sampler.snapshot())
    finally:
        stop.set()
        t.join()
    end = sampler.snapshot()
    gpu0 = [s["gpu"]["gpu_0"] for s in samples]
    peak_util = max(g.get("utilization", 0) for g in gpu0)
    peak_used = max(g.get("used", 0) for g in gpu0)
    print("during:", json.dumps(gpu0[-1]))
    print(f"peak utilization {peak_util}%  peak memory used {peak_used / 2**20:.0f} MiB  "
          f"name {gpu0[-1].get('name')}  power {gpu0[-1].get('power')} mW  temp {gpu0[-1].get('temperature')} C")
    print("summary:", json.dumps(summarize(start, end)))
    t0 = time.perf_counter()
    for _ in range(200):
        sampler.snapshot()
    print(f"snapshot with gpu+cpu+mem+process: {(time.perf_counter() - t0) / 200 * 1e6:.0f} us")
    ok = peak_used > 0 and peak_util > 0 and peak_used >= start["gpu"]["gpu_0"].get("used", 0)
    print("PASS" if ok else "FAIL: GPU memory or utilization did not move")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
