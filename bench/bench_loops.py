"""Per-iteration cost of FlowceptLoop and FlowceptLightweightLoop (with end_iter), default settings.

Run: PYTHONPATH=src python bench/bench_loops.py [--n N] [--sustained M]

Default settings: embedded SQLite store and JSONL buffer file in a private temporary HOME. Two figures per class:

* capture: median over 200 loops of ``--n`` iterations (default 1,000) of the loop's wall time minus the same
  bare loop's, per iteration. Between loops the bench waits until the flusher has persisted everything, so this
  is the cost on the user's thread while the pipeline keeps up and is idle (the issue's budget: FlowceptLoop <= 1.5 us,
  lightweight <= 0.7 us). Every record is persisted and counted in the store at the end.
* sustained: one loop of ``--sustained`` iterations (default 100,000) from the first ``next()`` until ``stop()``
  returned with every record in the store, per iteration. This is bound by the flusher's per-record cost
  (conversion, JSONL file, SQLite upsert), which competes with the loop for the GIL.
"""

from __future__ import annotations

import argparse
import atexit
import shutil
import os
import statistics
import tempfile
import time
import warnings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--reps", type=int, default=200)
    parser.add_argument("--sustained", type=int, default=100_000)
    opts = parser.parse_args()
    warnings.simplefilter("ignore")
    work = tempfile.mkdtemp(prefix="flowcept-bench-loops-")
    atexit.register(shutil.rmtree, work, True)  # a run leaves no store files behind
    os.chdir(work)
    os.environ["HOME"] = work
    os.environ.pop("FLOWCEPT_SETTINGS_PATH", None)

    from flowcept import Flowcept, FlowceptLightweightLoop, FlowceptLoop
    from flowcept.context import current_scope

    items = list(range(opts.n))

    def bare_once() -> float:
        t0 = time.perf_counter()
        for x in items:
            {"v": x}  # noqa: B018 - the same body as the captured loops
        return time.perf_counter() - t0

    def loop_once(cls) -> float:
        t0 = time.perf_counter()
        loop = cls(items, loop_name="bench")
        for x in loop:
            loop.end_iter({"v": x})
        return time.perf_counter() - t0

    base = statistics.median(bare_once() for _ in range(opts.reps)) / opts.n * 1e6
    print(f"capture: {opts.reps} loops of {opts.n} iterations; bare loop {base:.3f} us/iteration")
    for cls, target in ((FlowceptLoop, 1.5), (FlowceptLightweightLoop, 0.7)):
        samples = []
        with Flowcept(workflow_name="bench_loops") as fc:
            buffer = current_scope().buffer
            for _ in range(opts.reps):
                samples.append(loop_once(cls))
                buffer.flush()
                time.sleep(0.002)  # let the flusher finish freeing the batch it just wrote
        stored = Flowcept.db.count("tasks", {"workflow_id": fc.workflow_id})
        us = statistics.median(samples) / opts.n * 1e6 - base
        print(f"  {cls.__name__:<24} {us:6.3f} us/iteration overhead (target <= {target}); "
              f"stored {stored} of {opts.reps * opts.n}, dropped {fc.report.dropped}")

    m = opts.sustained
    big = list(range(m))
    print(f"sustained: one loop of {m} iterations, until stop() returned and all records are stored")
    for cls in (FlowceptLoop, FlowceptLightweightLoop):
        t0 = time.perf_counter()
        with Flowcept(workflow_name="bench_loops_sustained") as fc:
            loop = cls(big, loop_name="bench")
            for x in loop:
                loop.end_iter({"v": x})
            t1 = time.perf_counter()
        t2 = time.perf_counter()
        stored = Flowcept.db.count("tasks", {"workflow_id": fc.workflow_id})
        print(f"  {cls.__name__:<24} loop {(t1 - t0) / m * 1e6:6.2f} us/iteration, to stored "
              f"{(t2 - t0) / m * 1e6:6.2f} us/iteration; stored {stored}, dropped {fc.report.dropped}")


if __name__ == "__main__":
    main()
