"""Cost of one telemetry snapshot and of a task's start+end pair (cpu+mem+disk+network, the issue's target).

Run: PYTHONPATH=src python bench/bench_telemetry.py
Prints the median over 5 repetitions, in microseconds.
"""

from __future__ import annotations

import statistics
import time

from flowcept.capture.telemetry import basic_snapshot, make_sampler, summarize

N = 2000
REPS = 5


def per_call_us(fn, n=N):
    fn()
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n * 1e6


def median_us(fn, n=N):
    return statistics.median(per_call_us(fn, n) for _ in range(REPS))


def main():
    target = {"cpu": True, "mem": True, "disk": True, "network": True}
    cases = [
        ("cpu+mem+disk+network", target),
        ("cpu", {"cpu": True}),
        ("mem", {"mem": True}),
        ("disk", {"disk": True}),
        ("network", {"network": True}),
        ("process", {"process_info": True}),
        ("all (per_cpu, process)", dict(target, per_cpu=True, process_info=True)),
    ]
    for label, cfg in cases:
        s = make_sampler(cfg)
        print(f"snapshot {label:<26} {median_us(s.snapshot):8.1f} us")
    s = make_sampler(target)

    def task():
        start = s.snapshot()
        summarize(start, s.snapshot())

    pair = median_us(task)
    print(f"basic_snapshot (stdlib)           {median_us(basic_snapshot):8.1f} us")
    print(f"start+end+summarize {'cpu+mem+disk+network':<14} {pair:8.1f} us  (target <= 150 us)")


if __name__ == "__main__":
    main()
