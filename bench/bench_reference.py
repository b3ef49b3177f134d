"""Offline capture against the reference implementation, like for like, in one harness.

Both packages are named ``flowcept``, so the reference runs from its own virtual environment, e.g.::

    python3 -m venv /tmp/refvenv && /tmp/refvenv/bin/pip install flowcept==1.0.3
    PYTHONPATH=src python bench/bench_reference.py --reference-python /tmp/refvenv/bin/python

Each case runs in a fresh process (a private temporary HOME and working directory, no settings file), N calls
flat out inside ``with Flowcept(...)``, timed from before the ``with`` until it returned, minus a bare call measured
in the same process; then the JSONL buffer file is read back (``Flowcept.read_buffer_file()``) and its task records
counted (must equal N). Settings: the reference's built-in defaults (offline: messages kept in memory, the JSONL file
written at stop); this package with the embedded store off (``FLOWCEPT_SQLITE_ENABLED=false``: the JSONL file only,
written while capturing). Rounds alternate the two; the median of each is printed with the ratio.

``--instructions`` counts instead of timing (for a machine whose speed drifts): each case of each package runs
under ``valgrind --tool=callgrind`` with N and 3N calls; the instructions all threads execute inside the ``with``
block (callgrind dumps its counters at the block's edges) are counted, and the difference between the two runs is
divided by 2N: per record, start and stop left out. The records are counted as in the timed runs.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import glob
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

from bench_instructions import callgrind_total

#: bench_core.py's capture cases run here (the same functions, imported by both interpreters), with the issue's
#: target ratio for each.
TARGETS = {
    "@flowcept_task": 3,
    "@flowcept_task, 10-key dict + output_names": 3,
    "FlowceptTask(...).end(...)": 3,
    "@lightweight_flowcept_task": 2,
    "FlowceptLoop, per iteration": 2,
    "FlowceptLightweightLoop, per iteration": 2,
}

#: Run by both interpreters: one case, printed as one JSON line. argv: bench folder, case label, calls.
CASE_SOURCE = r'''
import json, os, shutil, sys, tempfile, time
bench, label, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
home = tempfile.mkdtemp(prefix="flowcept-bench-")
os.environ["HOME"] = home
os.chdir(home)
sys.path.insert(0, bench)
from bench_core import _bare, _cases
from flowcept import Flowcept

run = dict(_cases())[label]
t0 = time.perf_counter()
_bare(n)
bare_s = time.perf_counter() - t0
os.getppid()  # under --instructions: callgrind dumps its counters here and after the block
c0, t0 = time.process_time(), time.perf_counter()
with Flowcept(workflow_name="bench_offline"):
    run(n)
wall, cpu = time.perf_counter() - t0, time.process_time() - c0
os.getppid()
# The reference's lightweight records have no task_id (its database writer makes one): count activity ids too.
tasks = sum(1 for m in Flowcept.read_buffer_file()
            if m.get("type", "task") == "task" and ("task_id" in m or "activity_id" in m))
shutil.rmtree(home, ignore_errors=True)
print(json.dumps({"wall_us": (wall - bare_s) / n * 1e6, "cpu_us": cpu / n * 1e6, "tasks": tasks}))
'''


BENCH = os.path.dirname(os.path.abspath(__file__))


def run_case(python: str, case: str, calls: int, env: dict, prefix: tuple = ()) -> dict:
    done = subprocess.run([*prefix, python, "-c", CASE_SOURCE, BENCH, case, str(calls)], env=env, capture_output=True,
                          text=True, timeout=7200)
    if done.returncode:
        raise SystemExit(f"{python} failed on case {case!r}:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def block_instructions(python: str, case: str, calls: int, env: dict) -> tuple[int, int]:
    """(instructions of all threads inside the ``with`` block, task records counted) for one run under callgrind."""
    out = tempfile.mkdtemp(prefix="flowcept-callgrind-")
    try:
        result = run_case(python, case, calls, {**env, "PYTHONHASHSEED": "0"},
                          ("valgrind", "--tool=callgrind", "--dump-before=getppid", f"--callgrind-out-file={out}/cg"))
        (part,) = glob.glob(f"{out}/cg.2")  # dump 1: startup; dump 2: the block
        return callgrind_total(part), result["tasks"]
    finally:
        shutil.rmtree(out, ignore_errors=True)


def instructions(reference_python: str, calls: int, ref_env: dict, ours_env: dict) -> None:
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed (Debian: apt-get install valgrind)")
    runs = [(python, env, label, n) for label in TARGETS for python, env in
            ((reference_python, ref_env), (sys.executable, ours_env)) for n in (calls, 3 * calls)]
    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        counted = list(pool.map(lambda run: block_instructions(run[0], run[2], run[3], run[1]), runs))
    print(f"== offline, instructions per record, all threads, inside the with block (callgrind; runs of {calls:,} "
          f"and {3 * calls:,} calls, the difference divided by {2 * calls:,})")
    print(f"{'case':44s} {'reference':>10s} {'ours':>8s} {'ratio':>6s} {'target':>6s}  stored (ref / ours)")
    for i, (label, target) in enumerate(TARGETS.items()):
        (r1, rt1), (r3, rt3), (o1, ot1), (o3, ot3) = counted[4 * i:4 * i + 4]
        r, o = (r3 - r1) / (2 * calls), (o3 - o1) / (2 * calls)
        print(f"{label:44s} {r:10,.0f} {o:8,.0f} {r / o:5.2f}x {target:5d}x  {rt1:,}+{rt3:,} / {ot1:,}+{ot3:,}",
              flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reference-python", required=True,
                        help="the python of a virtual environment where the reference flowcept is installed")
    parser.add_argument("--calls", type=int, help="calls per case (default: 100,000; 10,000 with --instructions)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--instructions", action="store_true",
                        help="count instructions under callgrind instead of timing")
    opts = parser.parse_args()
    here = os.path.dirname(BENCH)
    ours_env = {**os.environ, "FLOWCEPT_SQLITE_ENABLED": "false",
                "PYTHONPATH": os.path.join(here, "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    ref_env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWCEPT") and k != "PYTHONPATH"}
    if opts.instructions:
        instructions(opts.reference_python, opts.calls or 10_000, ref_env, ours_env)
        return
    opts.calls = opts.calls or 100_000
    load = os.getloadavg()[0]
    print(f"== offline, flat out incl. stop(): {opts.calls:,} calls per case, median of {opts.rounds} rounds "
          f"(alternating), load average {load:.1f}")
    print(f"{'case':44s} {'reference us':>12s} {'ours us':>8s} {'ratio':>6s} {'target':>6s}  stored (ref / ours)")
    for label, target in TARGETS.items():
        ref, ours = [], []
        for _ in range(opts.rounds):
            ref.append(run_case(opts.reference_python, label, opts.calls, ref_env))
            ours.append(run_case(sys.executable, label, opts.calls, ours_env))
        r = statistics.median(x["wall_us"] for x in ref)
        o = statistics.median(x["wall_us"] for x in ours)
        print(f"{label:44s} {r:12.2f} {o:8.2f} {r / o:5.1f}x {target:5d}x  "
              f"{min(x['tasks'] for x in ref):,} / {min(x['tasks'] for x in ours):,}", flush=True)


if __name__ == "__main__":
    main()
