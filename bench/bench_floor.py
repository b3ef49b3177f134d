"""The floor under the offline targets not met: what a bare Python stand-in pays for the same records, in instructions.

Run: python bench/bench_floor.py --reference-python /tmp/refvenv/bin/python [--calls N]

``bench_reference.py`` compares this package with the reference offline; four cases miss their target ratio. This
bench asks whether any implementation could meet them. For each of the four, a stand-in written here (no package,
no thread, no file) does the least any Python implementation of that API must do on the caller's thread: the call
or iteration, a record dict built with the same fields, a new id from a counter where the record has one, the
record kept in a list, and every batch of 2,000 records encoded by one ``orjson.dumps`` call (the cheapest encoding
measured, docs/performance.md); the list is then cleared. It writes nothing and splits nothing, so it is below what
a JSONL file costs. Three stand-ins per case:

* **the reference's record**: the fields the reference's record of that case has (its lightweight task has no id,
  ``used: {}`` and the raw return value);
* **this package's record**: the fields this package's record has;
* **this package's record, with the two things this package does that the reference does not**: ``used`` and
  ``generated`` snapshotted when captured (``flowcept.serialize.snapshot``; the reference keeps the caller's dict,
  so a later change alters the record) and each batch checked for secret keys before it is encoded
  (``flowcept.redact.Redactor`` with the default settings).

The budget is the reference's own count for the case, measured here in ``bench_reference.py``'s harness, divided
by the target ratio. Each stand-in runs under ``valgrind --tool=callgrind`` with N and 3N calls; the instructions
inside the timed block are counted and the difference divided by 2N (start-up left out), as bench_reference does.
A floor above the budget means no Python implementation that keeps those records reaches the target.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile

from bench_instructions import callgrind_total
from bench_reference import BENCH, TARGETS, block_instructions

#: The cases whose offline target is not met (bench_reference.py), with their target ratios.
CASES = {label: TARGETS[label] for label in ("FlowceptTask(...).end(...)", "@lightweight_flowcept_task",
                                             "FlowceptLoop, per iteration", "FlowceptLightweightLoop, per iteration")}
STANDINS = ("reference's record", "this package's record", "this package's record + snapshots + redaction check")

#: One stand-in run, printed as one JSON line. argv: bench folder, case label, stand-in index, calls.
CHILD_SOURCE = r'''
import json, os, sys
sys.path.insert(0, sys.argv[1])
from bench_floor import standin
run = standin(sys.argv[2], int(sys.argv[3]))
run(1000)  # warm up
os.getppid()  # callgrind dumps its counters here and after the block
kept = run(int(sys.argv[4]))
os.getppid()
print(json.dumps({"records": kept}))
'''


def standin(label: str, kind: int):
    """``run(n) -> records encoded`` for one case; ``kind`` indexes :data:`STANDINS`."""
    import itertools
    import time
    from itertools import chain, repeat

    import orjson

    ours, features = kind >= 1, kind == 2
    if features:
        from flowcept.redact import Redactor
        from flowcept.serialize import IMMUTABLE_TYPES, snapshot
        from flowcept.settings import get_settings

        redactor = Redactor.from_settings(get_settings().project)  # the default settings: redaction on
        immutable = IMMUTABLE_TYPES
    separator = orjson.Fragment(b"\n")
    kept: list = []
    counter = itertools.count(10 ** 9)
    prefix = "9f3c0a1b2c3d4e5f-"
    workflow, campaign, host, clock = "0a491266-b856-4729-a2b5-b9ec372dadb2", "3d582e1b-d361-429d", "localhost", \
        time.time
    batch = 2000
    encoded = [0]

    def flush() -> None:
        if features:
            redactor(kept)
        orjson.dumps(list(chain.from_iterable(zip(kept, repeat(separator)))))
        encoded[0] += len(kept)
        kept.clear()

    if label == "@lightweight_flowcept_task":
        def light(x):
            return x + 1

        if not ours:
            def call(x):
                r = light(x)
                kept.append({"type": "task", "workflow_id": workflow, "activity_id": "light", "used": {},
                             "generated": r})
                if len(kept) >= batch:
                    flush()
                return r
        elif not features:
            def call(x):
                r = light(x)
                kept.append({"type": "task", "task_id": prefix + str(next(counter)), "workflow_id": workflow,
                             "used": {"x": x}, "activity_id": "light", "generated": {"arg_0": r}})
                if len(kept) >= batch:
                    flush()
                return r
        else:
            def call(x):
                # Values as this package captures them, inline (serialize.snapshot_expression).
                used = {"x": x if type(x) in immutable or (type(x) is float and x - x == 0.0) else snapshot(x)}
                r = light(x)
                kept.append({"type": "task", "task_id": prefix + str(next(counter)), "workflow_id": workflow,
                             "used": used, "activity_id": "light",
                             "generated": {"arg_0": r if type(r) in immutable or (type(r) is float and r - r == 0.0)
                                           else snapshot(r)}})
                if len(kept) >= batch:
                    flush()
                return r

        def body(n):
            for i in range(n):
                call(i)
    elif label == "FlowceptTask(...).end(...)":
        class Task:
            """The constructor's signature is the documented one (reference-facts: FlowceptTask)."""

            __slots__ = ("record",)

            def __init__(self, task_id=None, workflow_id=None, campaign_id=None, activity_id=None, agent_id=None,
                         source_agent_id=None, parent_task_id=None, used=None, data=None, subtype=None,
                         hostname=None, tags=None, adapter_id=None, custom_metadata=None, generated=None,
                         started_at=None, ended_at=None, stdout=None, stderr=None, status=None,
                         capture_telemetry=None, redact=None, redact_allow=None):
                self.record = {"activity_id": activity_id, "hostname": host, "type": "task",
                               "task_id": task_id or prefix + str(next(counter)),
                               "workflow_id": workflow_id or workflow, "campaign_id": campaign_id or campaign,
                               "started_at": clock(), "used": snapshot(used) if features else used}

            def end(self, generated=None, ended_at=None, stdout=None, stderr=None, data=None, custom_metadata=None,
                    status=None):
                record = self.record
                record["ended_at"] = clock()
                record["generated"] = snapshot(generated) if features else generated
                record["status"] = "FINISHED"
                kept.append(record)
                if len(kept) >= batch:
                    flush()

        def body(n):
            for i in range(n):
                Task(activity_id="t", used={"x": i}).end(generated={"y": i})
    else:
        light_loop = label.startswith("FlowceptLightweightLoop")

        class Loop:
            def __init__(self, items, loop_name=None):
                self.items = items
                self.current = None

            def __iter__(self):
                group = prefix + str(next(counter))
                for i, item in enumerate(self.items):
                    if ours:
                        used = {"i": i, "item": item if not features or type(item) in immutable
                                or (type(item) is float and item - item == 0.0) else snapshot(item)}
                        record = {"type": "task", "workflow_id": workflow, "campaign_id": campaign,
                                  "activity_id": "bench_iteration", "group_id": group, "subtype": "iteration",
                                  "task_id": group + "_" + str(i), "used": used}
                        if not light_loop:
                            record["hostname"] = host
                    else:
                        record = {"task_id": group + str(i), "workflow_id": workflow,
                                  "activity_id": "bench_iteration", "group_id": group, "used": {"i": i, "item": item}}
                        if not light_loop:
                            record["parent_task_id"] = None
                    if not light_loop:
                        record["started_at"] = clock()
                    self.current = record
                    yield item
                    if ours and not light_loop:
                        record["ended_at"] = clock()
                    record["status"] = "FINISHED"
                    kept.append(record)
                    if len(kept) >= batch:
                        flush()

            def end_iter(self, values: dict) -> None:
                self.current["generated"] = snapshot(values) if features else values

        def body(n):
            loop = Loop(range(n), loop_name="bench")
            for x in loop:
                loop.end_iter({"v": x})

    def run(n: int) -> int:
        encoded[0] = 0
        body(n)
        if kept:
            flush()
        return encoded[0]

    return run


def standin_instructions(label: str, kind: int, calls: int, env: dict) -> tuple[int, int]:
    """(instructions inside the block, records encoded) for one stand-in run under callgrind."""
    out = tempfile.mkdtemp(prefix="flowcept-callgrind-")
    try:
        done = subprocess.run(["valgrind", "--tool=callgrind", "--dump-before=getppid",
                               f"--callgrind-out-file={out}/cg", sys.executable, "-c", CHILD_SOURCE, BENCH, label,
                               str(kind), str(calls)], env={**env, "PYTHONHASHSEED": "0"}, capture_output=True,
                              text=True, timeout=7200)
        if done.returncode:
            raise SystemExit(f"stand-in {label!r} ({STANDINS[kind]}) failed:\n{done.stderr[-3000:]}")
        (part,) = glob.glob(f"{out}/cg.2")  # dump 1: startup; dump 2: the block
        return callgrind_total(part), json.loads(done.stdout.strip().splitlines()[-1])["records"]
    finally:
        shutil.rmtree(out, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reference-python", required=True,
                        help="the python of a virtual environment where the reference flowcept is installed")
    parser.add_argument("--calls", type=int, default=10_000, help="N: runs of N and 3N calls per count")
    opts = parser.parse_args()
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed (Debian: apt-get install valgrind)")
    here = os.path.dirname(BENCH)
    ours_env = {**os.environ, "PYTHONPATH": os.path.join(here, "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    ref_env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWCEPT") and k != "PYTHONPATH"}
    jobs = []
    for label in CASES:
        jobs += [lambda n, label=label: block_instructions(opts.reference_python, label, n, ref_env)]
        jobs += [lambda n, label=label, kind=kind: standin_instructions(label, kind, n, ours_env)
                 for kind in range(len(STANDINS))]
    runs = [(job, n) for job in jobs for n in (opts.calls, 3 * opts.calls)]
    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        counted = list(pool.map(lambda run: run[0](run[1]), runs))
    print(f"== the floor under the offline targets: instructions per record (callgrind; runs of {opts.calls:,} and "
          f"{3 * opts.calls:,} calls, the difference divided by {2 * opts.calls:,}); records counted per run")
    per_case = 1 + len(STANDINS)
    for i, (label, target) in enumerate(CASES.items()):
        rows = []
        for j in range(per_case):
            (a, ka), (b, kb) = counted[2 * (i * per_case + j)], counted[2 * (i * per_case + j) + 1]
            rows.append(((b - a) / (2 * opts.calls), f"{ka:,}+{kb:,}"))
        reference, budget = rows[0][0], rows[0][0] / target
        print(f"\n{label}: reference {reference:,.0f} ({rows[0][1]} records), target {target}x, budget "
              f"{budget:,.0f}")
        for name, (count, kept) in zip(STANDINS, rows[1:]):
            print(f"  floor, {name:55s} {count:8,.0f}  {'above' if count > budget else 'below'} the budget by "
                  f"{abs(count - budget):,.0f}  ({kept} records)")


if __name__ == "__main__":
    main()
