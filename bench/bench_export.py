"""Export time and peak memory for a large workflow (default 100,000 tasks; ``--tasks 1000000`` for the 1M run).

Run: PYTHONPATH=src python bench/bench_export.py [--tasks N] [--formats prov-json,openlineage,...] [--pg-dsn DSN]

Formats: bare, prov-json, prov-n, prov-o, ro-crate, openlineage, and the reports card, pdf, html.

One workflow of N tasks is written to a fresh SQLite file (or a private PostgreSQL schema with ``--pg-dsn``):
five activities, inputs and outputs with list values, each task using what the previous one generated (a data-flow
chain the exporter must find), every tenth task a child of the one before. Each export then runs in its own
process, so its peak RSS (``ru_maxrss``) is its own; the output size is reported too. "bare" is the floor in the
same run: a process that reads every task through the same paged store reads and writes it as one JSON line (no
provenance model). Memory that stays flat from 10k to 1M tasks is the streaming working; time per task is the
cost. On a shared 2-core machine the figures are noisy: compare columns of one run.
"""

from __future__ import annotations

import argparse
import atexit
import shutil
import os
import subprocess
import sys
import tempfile
import time
import uuid

SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")

_CHILD = r"""
import json, resource, sys, time
sys.path.insert(0, {src!r})
from flowcept.store import load_store_class
kind, location, fmt, out, wf = sys.argv[1:6]
store = load_store_class(kind)(location)
t0 = time.perf_counter()
if fmt == "bare":
    import orjson
    from flowcept.export._source import StoreSource
    n = 0
    with open(out, "wb") as fh:
        for page in StoreSource(store, wf).task_pages():
            for task in page:
                fh.write(orjson.dumps(task) + b"\n")
                n += 1
    result = {{"tasks": n}}
elif fmt in ("card", "pdf", "html"):
    from flowcept.report import generate_report
    kind_ = "workflow_card" if fmt == "card" else "provenance_report"
    stats = generate_report(kind_, "markdown" if fmt == "card" else fmt, output_path=out, workflow_id=wf, store=store)
    result = {{"tasks": stats["tasks"]}}
else:
    from flowcept.export import export_workflow
    result = export_workflow(wf, fmt, out, store=store)
elapsed = time.perf_counter() - t0
store.close()
print(json.dumps({{"secs": elapsed, "maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "result": {{k: v for k, v in result.items() if k != "output"}}}}))
"""


def fill(store, n: int, wf: str) -> float:
    """Write the workflow and its N tasks; returns seconds."""
    t0 = time.perf_counter()
    store.upsert([{"type": "workflow", "workflow_id": wf, "name": "bench_export", "started_at": 0.0,
                   "ended_at": float(n), "status": "FINISHED", "user": "bench", "hostname": "bench-host"}])
    batch = []
    for i in range(n):
        task = {"type": "task", "task_id": f"{wf[:8]}-{i:08d}", "workflow_id": wf, "activity_id": f"step{i % 5}",
                "started_at": float(i), "ended_at": i + 0.5, "status": "FINISHED" if i % 97 else "ERROR",
                "hostname": f"node{i % 4}", "used": {"x": i, "prev": [i, i + 1]},
                "generated": {"y": [i + 1, i + 2]},
                "telemetry_summary": {"cpu": {"user_time_diff": 0.01}, "memory": {"used_mem_diff": 1024}}}
        if i % 10 == 1:
            task["parent_task_id"] = f"{wf[:8]}-{i - 1:08d}"
        batch.append(task)
        if len(batch) == 20_000:
            store.upsert(batch)
            batch = []
    if batch:
        store.upsert(batch)
    return time.perf_counter() - t0


def run_child(kind: str, location: str, fmt: str, out: str, wf: str) -> dict:
    import json

    proc = subprocess.run([sys.executable, "-c", _CHILD.format(src=os.path.abspath(SRC)), kind, location, fmt, out,
                           wf], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{fmt} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def size_of(path: str) -> int:
    if os.path.isdir(path):
        return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files)
    return os.path.getsize(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--formats", default="bare,prov-json,openlineage,ro-crate,prov-n,prov-o")
    parser.add_argument("--pg-dsn", default=None, help="use PostgreSQL (a private schema, dropped at the end)")
    parser.add_argument("--db", default=None, help="reuse a SQLite file an earlier run filled (with --keep-db)")
    parser.add_argument("--keep-db", default=None, metavar="PATH", help="keep the filled SQLite file at PATH")
    args = parser.parse_args()
    sys.path.insert(0, SRC)
    work = tempfile.mkdtemp(prefix="bench_export_")
    atexit.register(shutil.rmtree, work, True)  # a run leaves no store files behind
    wf = str(uuid.uuid4())
    schema_ctx = None
    if args.pg_dsn:
        sys.path.insert(0, os.path.join(SRC, ".."))
        from tests.store._pg import private_schema

        schema_ctx = private_schema(args.pg_dsn)
        kind, location = "postgres", schema_ctx.__enter__()
    else:
        kind, location = "sqlite", os.path.join(work, "bench.sqlite")
    from flowcept.store import load_store_class

    if args.db:
        location = args.db
    store = load_store_class(kind)(location)
    try:
        if args.db:
            (doc,) = store.find("workflows", {"name": "bench_export"})
            wf, args.tasks = doc["workflow_id"], store.count("tasks", {"workflow_id": doc["workflow_id"]})
            store.close()
            print(f"{kind} store {args.db}: {args.tasks:,} tasks")
        else:
            secs = fill(store, args.tasks, wf)
            store.close()
            print(f"{kind} store, {args.tasks:,} tasks written in {secs:.1f} s")
        print(f"{'format':<12} {'seconds':>9} {'us/task':>9} {'peak RSS MiB':>13} {'output MiB':>11}")
        for fmt in args.formats.split(","):
            out = os.path.join(work, f"out.{fmt}")
            rec = run_child(kind, location, fmt, out, wf)
            print(f"{fmt:<12} {rec['secs']:9.1f} {rec['secs'] / args.tasks * 1e6:9.1f} "
                  f"{rec['maxrss_kib'] / 1024:13.1f} {size_of(out) / 2**20:11.1f}", flush=True)
            subprocess.run(["rm", "-rf", out])
    finally:
        if schema_ctx is not None:
            schema_ctx.__exit__(None, None, None)
        if args.keep_db and not args.db and kind == "sqlite":
            os.replace(location, args.keep_db)
        subprocess.run(["rm", "-rf", work])


if __name__ == "__main__":
    main()
