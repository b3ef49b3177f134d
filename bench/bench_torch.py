"""Per-forward overhead of @flowcept_torch on a small model, default settings, records persisted to SQLite.

Run: PYTHONPATH=src python bench/bench_torch.py

Model: Linear(10, 1) (the spec's MyNet), input 100x10, CPU, under ``torch.no_grad()``. Cases: the bare model,
parent-only capture, and the default parent_and_children capture (one child). Figures: median over 5 repetitions of
N forwards, minus the bare model, per forward; the flusher is drained between repetitions. "burst" uses
N = 900 (fewer records than one flusher batch, so the flusher stays idle while the model runs: the cost on the
user's thread); "sustained" uses N = 5,000 (the flusher converts and writes batches meanwhile, competing for the
GIL). Target: parent-forward capture <= 10 us per forward.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import warnings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args()
    warnings.simplefilter("ignore")
    work = tempfile.mkdtemp(prefix="flowcept-bench-torch-")
    os.chdir(work)
    os.environ["HOME"] = work
    os.environ.pop("FLOWCEPT_SETTINGS_PATH", None)

    import torch
    import torch.nn as nn

    from flowcept import Flowcept, flowcept_torch
    from flowcept.context import current_scope
    from flowcept.settings import reload_settings

    torch.set_num_threads(1)

    class MyNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(10, 1)

        def forward(self, x):
            return self.fc(x)

    x = torch.randn(100, 10)
    def timed(model, flush, n) -> float:
        samples = []
        with torch.no_grad():
            for _ in range(5):
                t0 = time.perf_counter()
                for _ in range(n):
                    model(x)
                samples.append((time.perf_counter() - t0) / n * 1e6)
                flush()
                time.sleep(0.002)
        return statistics.median(samples)

    bare = timed(MyNet(), lambda: None, 5000)
    print(f"bare MyNet forward: {bare:.2f} us (torch threads 1)")
    settings_file = os.path.join(work, "settings.yaml")
    for what in ("parent_only", "parent_and_children"):
        with open(settings_file, "w") as fh:
            fh.write(f"instrumentation:\n  torch:\n    what: {what}\n")
        os.environ["FLOWCEPT_SETTINGS_PATH"] = settings_file
        reload_settings()
        Net = flowcept_torch(MyNet)
        for label, n in (("burst", 900), ("sustained", 5000)):
            with Flowcept(workflow_name="bench_torch") as fc:
                model = Net()
                us = timed(model, current_scope().buffer.flush, n)
            stored = Flowcept.db.count("tasks", {"workflow_id": fc.workflow_id})
            print(f"  {what:<20} {label:<9} {us - bare:6.2f} us overhead per forward (target parent <= 10); "
                  f"tasks stored {stored}, dropped {fc.report.dropped}")


if __name__ == "__main__":
    main()
