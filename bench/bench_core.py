"""Capture cost of every capture method, default settings (embedded SQLite store + JSONL buffer file).

Run: PYTHONPATH=src python bench/bench_core.py [--calls N] [--skip-memory] [--skip-floor]

Prints, all measured in this one run, in a private temporary HOME:

* **flat out, incl. stop()** (the headline): for each capture method, N calls (or loop iterations) as fast as the
  caller can make them inside ``with Flowcept(...)``, timed from the first call until ``stop()`` returned; then the
  records of that workflow are counted in the store (``stored`` must equal N). Wall time per call, and the process
  CPU time per call (caller, flusher and SQLite together: less sensitive to other load on a shared machine).
  This is what a tight loop pays when every record must be persisted and queryable.
* **bursts, while the pipeline keeps up**: bursts of 1,000 calls (loops of 1,000 iterations); after each burst the
  bench waits until the flusher has stored it (``buffer.flush()``, untimed), with batch size 100,000 and a one-hour
  flush interval so that nothing is written during a burst. Median over 200 bursts minus the bare call. This is
  the caller's cost while the flusher keeps up with the program (most programs).
* 1,000,000 ``@flowcept_task`` calls: first call until ``stop()`` returned, stored count, peak RSS.
* SQLite's insert floor on this machine: a bare ``sqlite3`` script (no flowcept) inserting the same records, in
  batches of 2,000, the way the store does (one ``INSERT ... SELECT FROM json_each(?)`` per batch, WAL), with the
  primary key only and with the store's indexes. It bounds the flat-out figure of the default settings.
"""

from __future__ import annotations

import argparse
import atexit
import shutil
import os
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time

#: Figures quoted from issue 13 (measured there, on the same kind of machine, in a harness we do not have); not
#: measured by this bench. Reference = the original implementation, offline (RAM only, no store), incl. stop().
ISSUE_FIGURES = {
    "@flowcept_task": ("8.5-9.6", "8.8", 4),
    "@flowcept_task, 10-key dict + output_names": ("", "12.3 (offline)", 5),
    "@lightweight_flowcept_task": ("6-12", "2.1", 2),
    "FlowceptTask(...).end(...)": ("", "7.3 (offline)", 4),
    "FlowceptLoop, per iteration": ("10.4", "4.2", 3),
    "FlowceptLightweightLoop, per iteration": ("7.8", "2.7", 2),
}


def _cases(package=None):
    """The capture cases, (label, run(n)), using ``package`` (default: the installed ``flowcept``; bench_versions.py
    passes an older copy of it too)."""
    if package is None:
        import flowcept as package
    FlowceptLightweightLoop, FlowceptLoop, FlowceptTask = (package.FlowceptLightweightLoop, package.FlowceptLoop,
                                                          package.FlowceptTask)
    flowcept_task, lightweight_flowcept_task = package.flowcept_task, package.lightweight_flowcept_task

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

    def run_loop(n, cls=FlowceptLoop):
        loop = cls(range(n), loop_name="bench")
        for x in loop:
            loop.end_iter({"v": x})

    def run_light_loop(n):
        run_loop(n, FlowceptLightweightLoop)

    return [("@flowcept_task", run_decorated), ("@flowcept_task, 10-key dict + output_names", run_dict),
            ("@lightweight_flowcept_task", run_light), ("FlowceptTask(...).end(...)", run_task),
            ("FlowceptLoop, per iteration", run_loop), ("FlowceptLightweightLoop, per iteration", run_light_loop)]


def _bare(n):
    def bare(x):
        return x + 1

    for i in range(n):
        bare(i)


def flat_out(calls: int) -> None:
    """Each case: first call -> stop() returned, then the stored records counted."""
    from flowcept import Flowcept

    t0 = time.perf_counter()
    _bare(calls)
    bare_us = (time.perf_counter() - t0) / calls * 1e6
    print(f"== flat out, incl. stop(): {calls:,} calls per case, default settings; bare call {bare_us:.3f} us")
    print(f"{'case':44s} {'wall us/call':>12s} {'cpu us/call':>11s} {'stored':>9s}  target | issue: today, reference")
    for name, run in _cases():
        c0, t0 = time.process_time(), time.perf_counter()
        with Flowcept(workflow_name="bench_flat") as f:
            run(calls)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        stored = Flowcept.db.count("tasks", {"workflow_id": f.workflow_id})
        today, ref, target = ISSUE_FIGURES[name]
        print(f"{name:44s} {wall / calls * 1e6:12.2f} {cpu / calls * 1e6:11.2f} {stored:9,d}  <= {target} us | "
              f"{today or '-'}, {ref}", flush=True)


def bursts() -> None:
    """Bursts of 1,000 calls, the flusher storing each burst between bursts (untimed)."""
    from flowcept import Flowcept

    n, reps = 1000, 200
    rows = []
    with Flowcept(workflow_name="bench_bursts") as controller:
        def timed(fn):
            samples = []
            for _ in range(reps):
                t0 = time.perf_counter_ns()
                fn(n)
                samples.append((time.perf_counter_ns() - t0) / n)
                controller._buffer.flush()
            return statistics.median(samples)

        base = timed(_bare)
        for name, run in _cases():
            rows.append((name, timed(run)))
    stored = Flowcept.db.count("tasks", {"workflow_id": controller.workflow_id})
    print(f"== bursts (while the pipeline keeps up): median of {reps} bursts of {n} calls, flushed between bursts "
          f"(untimed); batch size 100,000, flush interval 3600 s; bare call {base:.0f} ns")
    for name, ns in rows:
        print(f"{name:44s} {(ns - base) / 1000:8.2f} us/call overhead")
    print(f"stored {stored:,} of {len(rows) * reps * n:,}")


def million() -> None:
    from flowcept import Flowcept

    (_, run), = [c for c in _cases() if c[0] == "@flowcept_task"]
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    with Flowcept(workflow_name="bench_million") as f:
        run(1_000_000)
    t1 = time.perf_counter()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    stored = Flowcept.db.count("tasks", {"workflow_id": f.workflow_id})
    print(f"1,000,000 @flowcept_task calls, first call -> stop() returned: {t1 - t0:.2f} s (target <= 4 s); "
          f"stored {stored:,}, dropped {f.report.dropped}; peak RSS {peak / 1024:.0f} MiB (before {before / 1024:.0f})")


def sqlite_floor(records: int = 200_000, batch: int = 2000) -> None:
    """Bare sqlite3, same record shape, same statement shape as the store: the store's floor on this machine."""
    import orjson

    wf = "9f7b3dc1-b120-4e27-afe4-6d5b0d7cf524"
    batches = [orjson.dumps([{"type": "task", "task_id": f"eb1fce01f0710e1f-{10**9 + i}", "workflow_id": wf,
                              "campaign_id": "dfeed25f-48d6-4188-91bf-1f99124b6b52", "used": {"x": i},
                              "activity_id": "dec", "hostname": "localhost", "ended_at": 1796032747.81 + i,
                              "started_at": 1796032747.8 + i, "status": "FINISHED", "generated": {"arg_0": i + 1}}
                             for i in range(s, s + batch)]) for s in range(0, records, batch)]
    split = ("INSERT INTO tasks (id, doc) SELECT json_extract(value, '$.task_id'), value FROM json_each(?) "
             "WHERE json_extract(value, '$.task_id') IS NOT NULL ON CONFLICT(id) DO UPDATE SET doc = excluded.doc")
    bound = ("INSERT INTO tasks (id, doc) VALUES " + ", ".join(["(?, CAST(? AS TEXT))"] * batch)
             + " ON CONFLICT(id) DO UPDATE SET doc = excluded.doc")
    rows = []
    for array in batches:
        parts = [orjson.dumps(d) for d in orjson.loads(array)]
        rows.append([v for d, part in zip(orjson.loads(array), parts) for v in (d["task_id"], part)])
    print(f"== SQLite {sqlite3.sqlite_version} insert floor, bare sqlite3 (no flowcept): {records:,} records of "
          f"{len(batches[0]) // batch} bytes, batches of {batch:,}, WAL, synchronous=NORMAL, 16 KiB pages")
    variants = (("array split in SQLite (json_each), primary key only", (), split, batches),
                ("array split in SQLite (json_each), the store's indexes", _INDEXES, split, batches),
                ("bound rows (the store's path), primary key only", (), bound, rows),
                ("bound rows (the store's path), the store's indexes", _INDEXES, bound, rows))
    for label, indexes, insert, params in variants:
        path = os.path.join(tempfile.mkdtemp(prefix="flowcept-floor-"), "floor.sqlite")
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("PRAGMA page_size = 16384")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("CREATE TABLE tasks (id TEXT PRIMARY KEY, doc TEXT NOT NULL)")
        for field in indexes:
            conn.execute(f"CREATE INDEX tasks_{field} ON tasks (json_extract(doc, '$.\"{field}\"'))")
        c0, t0 = time.process_time(), time.perf_counter()
        for p in params:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(insert, p if insert is bound else (p,))
            conn.execute("COMMIT")
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        conn.close()
        print(f"{label:56s} {wall / records * 1e6:6.2f} us/record wall, {cpu / records * 1e6:.2f} cpu "
              f"({records / wall:,.0f} records/s)", flush=True)


_INDEXES = ("workflow_id", "parent_task_id", "activity_id", "status", "started_at")  # flowcept/store/sqlite.py: _TASK_INDEXES


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--skip-memory", action="store_true", help="skip the 1,000,000-call run")
    parser.add_argument("--skip-floor", action="store_true", help="skip the bare SQLite floor")
    parser.add_argument("--part", choices=["all", "flat", "bursts"], default="all")
    opts = parser.parse_args()
    if opts.part == "all":
        try:
            load = os.getloadavg()
            print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores, load average {load[0]:.1f} "
                  f"{load[1]:.1f} {load[2]:.1f}, SQLite {sqlite3.sqlite_version}")
        except OSError:
            pass
        env = {**os.environ, "FLOWCEPT_BUFFER_BATCH_SIZE": "100000", "FLOWCEPT_BUFFER_FLUSH_INTERVAL_SECS": "3600"}
        subprocess.run([sys.executable, __file__, "--part", "bursts"], check=True, env=env)
    work = tempfile.mkdtemp(prefix="flowcept-bench-")
    atexit.register(shutil.rmtree, work, True)  # a run leaves no store files behind
    os.chdir(work)
    os.environ["HOME"] = work  # default store under ~/.flowcept, private to this run
    os.environ.pop("FLOWCEPT_SETTINGS_PATH", None)
    if opts.part == "bursts":
        bursts()
        return
    flat_out(opts.calls)
    if not opts.skip_memory:
        million()
    if not opts.skip_floor:
        sqlite_floor()
    print("issue figures are quoted from issue 13 (not measured here): 'today' = flat out incl. stop() before this "
          "work, 'reference' = the original implementation offline (RAM only, no store) incl. stop()")


if __name__ == "__main__":
    main()
