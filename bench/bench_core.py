"""Capture overhead of the core API, default settings (embedded SQLite store + JSONL buffer file).

Run: python bench/bench_core.py [--calls N]

Prints, per case, the median ns per call over 5 repetitions, the overhead over a bare call and the ratio to it,
all measured in this one run, in two regimes:

* sustained: the flusher encodes and stores records while the calls run (on a 2-core machine it shares the GIL
  and the cores with the caller, so this is the cost per call when capturing as fast as the store can write);
* capture only: bursts of 1,000 calls; the flusher stores each burst's records between bursts (untimed), so this
  is what a call costs the caller's thread while the pipeline keeps up (the way bench_loops.py measures loops).

Then the end-to-end time for 100,000 decorated calls until stop() returns with all of them queryable (counted in
the store), and the peak RSS of 1,000,000 decorated calls.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time


def _median_ns(fn, calls: int, reps: int = 5, after=None) -> float:
    samples = []
    for _ in range(reps):
        t0 = time.perf_counter_ns()
        fn(calls)
        samples.append((time.perf_counter_ns() - t0) / calls)
        if after is not None:
            after()
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--mode", choices=["both", "sustained", "capture"], default="both")
    opts = parser.parse_args()
    if opts.mode == "both":
        import subprocess

        subprocess.run([sys.executable, __file__, "--mode", "capture"], check=True,
                       env={**os.environ, "FLOWCEPT_BUFFER_BATCH_SIZE": "100000",
                            "FLOWCEPT_BUFFER_FLUSH_INTERVAL_SECS": "3600"})
        opts.mode = "sustained"
    work = tempfile.mkdtemp(prefix="flowcept-bench-")
    os.chdir(work)
    os.environ["HOME"] = work  # default store under ~/.flowcept, private to this run
    os.environ.pop("FLOWCEPT_SETTINGS_PATH", None)

    from flowcept import Flowcept, FlowceptTask, flowcept_task, lightweight_flowcept_task

    def bare(x):
        return x + 1

    @flowcept_task
    def decorated(x):
        return x + 1

    @flowcept_task(output_names="y")
    def decorated_dict(d):
        return 1

    @lightweight_flowcept_task
    def light(x):
        return x + 1

    arg10 = {f"key_{i}": i for i in range(10)}

    def run_bare(n):
        for i in range(n):
            bare(i)

    def run_decorated(n):
        for i in range(n):
            decorated(i)

    def run_dict(n):
        for _ in range(n):
            decorated_dict(arg10)

    def run_light(n):
        for i in range(n):
            light(i)

    def run_task(n):
        for i in range(n):
            FlowceptTask(activity_id="t", used={"x": i}).end(generated={"y": i})

    n = opts.calls
    rows = []
    if opts.mode == "capture":
        # Bursts of 1,000 calls; the queued records are stored between bursts, outside the timed part.
        n, reps = 1000, 200
    else:
        reps = 5
    with Flowcept(workflow_name="bench_core") as controller:
        after = (lambda: controller._buffer.flush()) if opts.mode == "capture" else None
        base = _median_ns(run_bare, n, reps)
        rows.append(("bare function call", base))
        rows.append(("@flowcept_task", _median_ns(run_decorated, n, reps, after=after)))
        rows.append(("@flowcept_task, 10-key dict arg + output_names", _median_ns(run_dict, n, reps, after=after)))
        rows.append(("@lightweight_flowcept_task", _median_ns(run_light, n, reps, after=after)))
        rows.append(("FlowceptTask(...).end(...)", _median_ns(run_task, n, reps, after=after)))
    print(f"== {opts.mode}: python {sys.version.split()[0]}, {os.cpu_count()} cores, median over {reps} "
          f"repetitions of {n} calls")
    print(f"{'case':50s} {'ns/call':>10s} {'overhead us':>12s} {'ratio':>8s}")
    for name, ns in rows:
        print(f"{name:50s} {ns:10.0f} {(ns - base) / 1000:12.2f} {ns / base:8.1f}")
    if opts.mode == "capture":
        return

    # End to end: first call -> stop() returned -> all records counted in the store.
    e2e_n = 100_000
    t0 = time.perf_counter()
    with Flowcept(workflow_name="bench_e2e") as f:
        run_decorated(e2e_n)
    t1 = time.perf_counter()
    stored = Flowcept.db.count("tasks", {"workflow_id": f.workflow_id})
    print(f"end to end: {e2e_n} decorated calls captured, flushed and stored in {t1 - t0:.3f} s "
          f"(store holds {stored}; dropped {f.report.dropped})")

    if not opts.skip_memory:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        t0 = time.perf_counter()
        with Flowcept(workflow_name="bench_memory") as f:
            run_decorated(1_000_000)
        t1 = time.perf_counter()
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        stored = Flowcept.db.count("tasks", {"workflow_id": f.workflow_id})
        print(f"1,000,000 decorated calls in {t1 - t0:.2f} s: peak RSS {peak / 1024:.0f} MiB "
              f"(before: {before / 1024:.0f} MiB), stored {stored}, dropped {f.report.dropped}")


if __name__ == "__main__":
    main()
