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
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

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
c0, t0 = time.process_time(), time.perf_counter()
with Flowcept(workflow_name="bench_offline"):
    run(n)
wall, cpu = time.perf_counter() - t0, time.process_time() - c0
# The reference's lightweight records have no task_id (its database writer makes one): count activity ids too.
tasks = sum(1 for m in Flowcept.read_buffer_file()
            if m.get("type", "task") == "task" and ("task_id" in m or "activity_id" in m))
shutil.rmtree(home, ignore_errors=True)
print(json.dumps({"wall_us": (wall - bare_s) / n * 1e6, "cpu_us": cpu / n * 1e6, "tasks": tasks}))
'''


BENCH = os.path.dirname(os.path.abspath(__file__))


def run_case(python: str, case: str, calls: int, env: dict) -> dict:
    done = subprocess.run([python, "-c", CASE_SOURCE, BENCH, case, str(calls)], env=env, capture_output=True,
                          text=True, timeout=1800)
    if done.returncode:
        raise SystemExit(f"{python} failed on case {case!r}:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reference-python", required=True,
                        help="the python of a virtual environment where the reference flowcept is installed")
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    opts = parser.parse_args()
    here = os.path.dirname(BENCH)
    ours_env = {**os.environ, "FLOWCEPT_SQLITE_ENABLED": "false",
                "PYTHONPATH": os.path.join(here, "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    ref_env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWCEPT") and k != "PYTHONPATH"}
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
