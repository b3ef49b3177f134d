"""This code against an older commit, in one process, bursts paired one by one: a timing comparison that holds on a
machine whose speed drifts (a shared host), where two runs minutes apart differ by more than the change measured.

Run: python bench/bench_versions.py --before REV [--bursts N]

The older commit's ``src/flowcept`` is extracted (``git archive``) into a temporary folder as the package
``flowcept_before`` (its ``flowcept`` imports renamed), and both run side by side in this process, each with its own
``Flowcept`` started (default settings, embedded store; batch size 100,000 and a one-hour flush interval, so nothing
is written during a burst). For each case of ``bench_core.py``, N pairs of bursts of 1,000 calls alternate the two
versions (which goes first alternates too); after each burst its version's buffer is flushed (untimed). Printed: the
median overhead over a bare call of each version, and the median of the paired ratios (after / before), which
cancels the machine's drift. This is the "bursts" regime (the caller's cost while the pipeline keeps up), with the
two versions sharing one interpreter: one garbage-collected heap, two idle flushers.
"""

from __future__ import annotations

import argparse
import io
import os
import re
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time

_HERE = os.path.dirname(os.path.abspath(__file__))
_BEFORE = "flowcept_before"


def extract(rev: str, into: str) -> None:
    """``src/flowcept`` of ``rev`` as the package ``flowcept_before`` under ``into``."""
    archive = subprocess.run(["git", "archive", "--format=tar", rev, "src/flowcept"], cwd=os.path.dirname(_HERE),
                             check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    os.rename(os.path.join(into, "src", "flowcept"), os.path.join(into, _BEFORE))
    pattern = re.compile(r"\bflowcept(?=\.[a-z_])|(?<=from )flowcept(?= import)|(?<=import )flowcept\b")
    for folder, _dirs, files in os.walk(os.path.join(into, _BEFORE)):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                with open(path, encoding="utf-8") as f:
                    text = f.read()
                with open(path, "w", encoding="utf-8") as f:
                    f.write(pattern.sub(_BEFORE, text))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="the older commit (e.g. d17a950)")
    parser.add_argument("--bursts", type=int, default=200, help="pairs of bursts per case")
    opts = parser.parse_args()
    work = tempfile.mkdtemp(prefix="flowcept-versions-")
    try:
        extract(opts.before, work)
        os.environ["HOME"] = work  # default stores under ~/.flowcept, private to this run
        os.environ.pop("FLOWCEPT_SETTINGS_PATH", None)
        os.environ["FLOWCEPT_BUFFER_BATCH_SIZE"] = "100000"
        os.environ["FLOWCEPT_BUFFER_FLUSH_INTERVAL_SECS"] = "3600"
        os.chdir(work)
        sys.path.insert(0, work)
        sys.path.insert(0, _HERE)
        compare(opts.before, opts.bursts)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def compare(rev: str, bursts: int) -> None:
    import importlib

    import flowcept
    from bench_core import _bare, _cases

    before = importlib.import_module(_BEFORE)
    versions = {"before": before, "after": flowcept}
    cases = {who: dict(_cases(package)) for who, package in versions.items()}
    controllers = {who: package.Flowcept(workflow_name=f"bench_versions_{who}") for who, package in versions.items()}
    for controller in controllers.values():
        controller.start()
    try:
        print(f"== bursts of 1,000 calls, {bursts} pairs per case, overhead over a bare call; before = {rev}, "
              f"after = this checkout, in one process")
        print(f"{'case':44s} {'before ns':>10s} {'after ns':>10s} {'after/before (paired median)':>30s}")
        for name in cases["after"]:
            samples: dict[str, list[float]] = {"before": [], "after": []}
            for i in range(bursts):
                for who in (("before", "after") if i % 2 == 0 else ("after", "before")):
                    t0 = time.perf_counter_ns()
                    _bare(1000)
                    t1 = time.perf_counter_ns()
                    cases[who][name](1000)
                    t2 = time.perf_counter_ns()
                    samples[who].append(((t2 - t1) - (t1 - t0)) / 1000)
                    controllers[who]._buffer.flush()
            ratios = [a / b for a, b in zip(samples["after"], samples["before"]) if b > 0]
            before_ns, after_ns = statistics.median(samples["before"]), statistics.median(samples["after"])
            print(f"{name:44s} {before_ns:10.0f} {after_ns:10.0f} {statistics.median(ratios):30.3f}", flush=True)
    finally:
        for controller in controllers.values():
            controller.stop()


if __name__ == "__main__":
    main()
