"""Instructions the caller's thread executes per capture call, counted by valgrind (callgrind): a figure that does
not move with the machine's load, for comparing two versions of the code on a shared or noisy machine.

Run: python bench/bench_instructions.py [--tree SRC ...] [--bursts R] [--seeds K]

For each source tree (default: this checkout's ``src``; ``--tree`` adds others, e.g. a ``git worktree`` of an older
commit), one process runs under ``valgrind --tool=callgrind`` with the cases of ``bench_core.py`` in its "bursts"
regime: R bursts of 1,000 calls per case, the flusher storing each burst between bursts (batch size 100,000, flush
interval 3600 s). Callgrind dumps its counters at each case boundary, so each case's instructions on the main thread
are counted apart from startup, the other cases and the flusher thread. Printed: instructions per call minus those of
a bare call measured the same way, the mean of runs with string hashing seeded 0, 1, 2 (each seed makes dict
inserts probe differently: about 1% on a case).

This is the caller's cost while the pipeline keeps up, counted in instructions: time per instruction varies with
the machine, and cache misses and the other thread are not in it, so it compares code versions; it is not a time.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import glob
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile

_HERE = os.path.dirname(os.path.abspath(__file__))
# os.getppid() marks the boundary between cases: callgrind dumps its counters before each getppid call, which
# nothing else in the run makes.
_CHILD = """
import os, sys, tempfile
sys.path.insert(0, {here!r})
os.environ["HOME"] = tempfile.mkdtemp(prefix="flowcept-instr-")
os.environ["FLOWCEPT_BUFFER_BATCH_SIZE"] = "100000"
os.environ["FLOWCEPT_BUFFER_FLUSH_INTERVAL_SECS"] = "3600"
os.environ.pop("FLOWCEPT_SETTINGS_PATH", None)
from bench_core import _bare, _cases
from flowcept import Flowcept
cases = [("bare call", _bare)] + _cases()
with Flowcept(workflow_name="bench_instructions") as controller:
    for _name, run in cases:  # warm up: first calls compile wrappers and fill caches
        run(1000)
        controller._buffer.flush()
    for _name, run in cases:
        os.getppid()
        for _ in range({bursts}):
            run(1000)
            controller._buffer.flush()
    os.getppid()
    print("\\n".join(name for name, _ in cases))
"""


def callgrind_total(path: str) -> int:
    """The instructions counted in one callgrind output file."""
    with open(path) as f:
        return int(re.search(r"^(?:summary|totals): (\d+)", f.read(), re.M).group(1))


def count(tree: str, bursts: int, seed: int) -> dict[str, float]:
    """Instructions per call on the main thread for each case (the bare call included), for the code in ``tree``,
    with string hashing seeded by ``seed`` (dict inserts probe differently with each seed)."""
    out = tempfile.mkdtemp(prefix="flowcept-callgrind-")
    try:
        env = {**os.environ, "PYTHONPATH": os.path.abspath(tree), "PYTHONHASHSEED": str(seed)}
        proc = subprocess.run(
            ["valgrind", "--tool=callgrind", "--separate-threads=yes", "--dump-before=getppid",
             f"--callgrind-out-file={out}/cg.%p", sys.executable, "-c", _CHILD.format(here=_HERE, bursts=bursts)],
            env=env, capture_output=True, text=True, check=True)
        names = [n for n in proc.stdout.strip().split("\n") if n]
        totals = {}
        for path in glob.glob(f"{out}/cg.*.*-01"):  # main thread, one file per dump
            dump = int(re.search(r"\.(\d+)-01$", path).group(1))
            totals[dump] = callgrind_total(path)
        # Dump 1 is startup and warm-up; dumps 2.. are the cases in order.
        return {name: totals[i + 2] / (bursts * 1000) for i, name in enumerate(names)}
    finally:
        shutil.rmtree(out, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", action="append", default=[], help="another source tree to count (its src folder)")
    parser.add_argument("--bursts", type=int, default=5, help="bursts of 1,000 calls per case")
    parser.add_argument("--seeds", type=int, default=3, help="runs per tree, each with its own PYTHONHASHSEED")
    opts = parser.parse_args()
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed (Debian: apt-get install valgrind)")
    trees = [os.path.join(_HERE, os.pardir, "src")] + opts.tree
    runs = [(tree, seed) for tree in trees for seed in range(opts.seeds)]
    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        counted = list(pool.map(lambda run: count(run[0], opts.bursts, run[1]), runs))
    # The mean over the seeds, per tree.
    results = [{name: statistics.mean(c[name] for c in counted[i * opts.seeds:(i + 1) * opts.seeds])
                for name in counted[i * opts.seeds]} for i in range(len(trees))]
    labels = ["this checkout"] + opts.tree
    print(f"== instructions per call on the caller's thread, minus a bare call (callgrind; {opts.bursts} bursts of "
          f"1,000 calls per case, flushed between bursts; mean of PYTHONHASHSEED 0..{opts.seeds - 1})")
    print(f"{'case':44s} " + " ".join(f"{label[-24:]:>24s}" for label in labels))
    for name in results[0]:
        if name == "bare call":
            continue
        print(f"{name:44s} " + " ".join(f"{r[name] - r['bare call']:24,.0f}" for r in results))
    print(f"{'(bare call)':44s} " + " ".join(f"{r['bare call']:24,.0f}" for r in results))


if __name__ == "__main__":
    main()
