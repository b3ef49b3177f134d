"""Lineage query time on a 100,000-task workflow, and hostile-query bounds.

Run: python bench/bench_lineage.py [--tasks N] [--postgres DSN]

Builds, in a fresh store, one workflow of N tasks in two shapes and times (median of 3, after one warm-up):

* chain: task i depends on task i-1, the edge kinds in turn parent_task_id, dependencies, and data (task i uses the
  object id task i-1 generated); ``upstream`` of the last task walks all N-1 tasks, ``upstream(depth=10)`` ten;
* fan-in: N-1 independent tasks each generate an object, one sink uses all of them (``dependencies`` for half,
  object ids in ``used`` for the other half); ``upstream`` of the sink returns N-1 tasks, ``downstream`` of one
  producer returns the sink;
* ``edges`` of the whole workflow (N-1 edges per shape).

Every result is checked for its exact length. Then the hostile-query bounds: a catastrophic ``$regex``
(``(a|aa)+$`` on a 41-character value) and a 100,000-value ``$in``, timed until they answer or fail.
The SQLite store is used unless ``--postgres`` gives a DSN (a private schema is created and dropped).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))


def _timed(fn, reps: int = 3):
    fn()
    samples, result = [], None
    for _ in range(reps):
        t0 = time.perf_counter()
        result = fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples), result


def _chain(n: int, wf: str) -> list[dict]:
    recs = []
    for i in range(n):
        rec = {"type": "task", "task_id": f"{wf}-{i}", "workflow_id": wf, "activity_id": "step",
               "started_at": float(i), "generated": {"out": {"object_id": f"{wf}-o{i}"}}}
        kind = i % 3
        if i and kind == 0:
            rec["parent_task_id"] = f"{wf}-{i - 1}"
        elif i and kind == 1:
            rec["dependencies"] = [f"{wf}-{i - 1}"]
        elif i:
            rec["used"] = {"prev": {"object_id": f"{wf}-o{i - 1}"}}
        recs.append(rec)
    return recs


def _fan_in(n: int, wf: str) -> list[dict]:
    producers = [{"type": "task", "task_id": f"{wf}-{i}", "workflow_id": wf, "activity_id": "produce",
                  "started_at": float(i), "generated": {"object_id": f"{wf}-o{i}"}} for i in range(n - 1)]
    half = (n - 1) // 2
    sink = {"type": "task", "task_id": f"{wf}-sink", "workflow_id": wf, "activity_id": "reduce",
            "started_at": float(n), "dependencies": [f"{wf}-{i}" for i in range(half)],
            "used": {"parts": [{"object_id": f"{wf}-o{i}"} for i in range(half, n - 1)]}}
    return producers + [sink]


def _write(store, recs: list[dict]) -> float:
    t0 = time.perf_counter()
    for start in range(0, len(recs), 5000):
        store.upsert(recs[start:start + 5000])
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--postgres", metavar="DSN", help="also run on PostgreSQL (e.g. host=127.0.0.1 user=postgres)")
    opts = parser.parse_args()
    from flowcept.store.sqlite import SqliteStore

    stores = [("sqlite", lambda: SqliteStore(os.path.join(tempfile.mkdtemp(prefix="flowcept-bench-"), "l.sqlite")),
               None)]
    if opts.postgres:
        stores.append(("postgres", None, opts.postgres))
    for name, make, dsn in stores:
        schema = None
        if dsn:
            import psycopg
            from psycopg.conninfo import make_conninfo

            from flowcept.store.postgres import PostgresStore

            schema = f"flowcept_bench_{uuid.uuid4().hex[:8]}"
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute(f"CREATE SCHEMA {schema}")
            store = PostgresStore(make_conninfo(dsn, options=f"-csearch_path={schema}"))
        else:
            store = make()
        try:
            _run(name, store, opts.tasks)
        finally:
            store.close()
            if schema:
                with psycopg.connect(dsn, autocommit=True) as conn:
                    conn.execute(f"DROP SCHEMA {schema} CASCADE")


def _run(name: str, store, n: int) -> None:
    from flowcept.errors import QueryError
    from flowcept.query.lineage import downstream, edges, upstream

    print(f"== {name}: {n:,} tasks per workflow (machine shared and noisy: figures are indicative)")
    chain, fan = _chain(n, "chain"), _fan_in(n, "fan")
    print(f"write chain: {_write(store, chain):.2f} s, fan-in: {_write(store, fan):.2f} s (upsert, links refreshed in the same transaction)")
    ids = ["task_id"]
    cases = [
        ("chain upstream(last)", lambda: upstream(store, f"chain-{n - 1}", projection=ids), n - 1),
        ("chain upstream(last, depth=10)", lambda: upstream(store, f"chain-{n - 1}", depth=10, projection=ids), 10),
        ("chain downstream(first, depth=10)", lambda: downstream(store, "chain-0", depth=10, projection=ids), 10),
        ("chain edges(workflow)", lambda: list(edges(store, "chain")), n - 1),
        ("fan-in upstream(sink)", lambda: upstream(store, "fan-sink", projection=ids), n - 1),
        ("fan-in downstream(one producer)", lambda: downstream(store, "fan-7", projection=ids), 1),
        ("fan-in edges(workflow)", lambda: list(edges(store, "fan")), n - 1),
    ]
    for label, fn, expected in cases:
        secs, result = _timed(fn)
        assert len(result) == expected, (label, len(result), expected)
        print(f"{label:<36} {secs * 1000:10.1f} ms  ({len(result):,} results)")

    store.upsert([{"type": "task", "task_id": "slow", "workflow_id": "h", "used": {"s": "a" * 40 + "b"}}])
    t0 = time.perf_counter()
    try:
        outcome = f"answered {store.count('tasks', {'used.s': {'$regex': '(a|aa)+$'}})}"
    except QueryError as exc:
        outcome = f"QueryError ({str(exc)[:60]}...)"
    print(f"$regex (a|aa)+$ on 41 chars: {time.perf_counter() - t0:.3f} s, {outcome}")
    values = [f"chain-{i}" for i in range(0, 2 * n, 2)]
    t0 = time.perf_counter()
    count = store.count("tasks", {"task_id": {"$in": values}})
    print(f"$in with {len(values):,} values: {time.perf_counter() - t0:.3f} s, {count:,} matches")


if __name__ == "__main__":
    main()
