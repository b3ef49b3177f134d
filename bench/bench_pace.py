"""Timings that used to be asserted in the test suite (tests assert records, not clocks; the figures live here).

Run: PYTHONPATH=src python bench/bench_pace.py [--skip-redis]

Prints, each measured once in this run (noisy on a shared machine: read them as orders of magnitude):
  1. SQLite store: 100,000 small tasks upserted in one call (was asserted < 10 s in tests/store/test_contract.py);
  2. stop() of a workflow with an in-process keeper on Redis Streams, from the end of the block until stop()
     returned with the task stored (was asserted < 1.5 s in tests/keeper/test_keeper.py; needs Redis);
  3. the caller's pace while PostgreSQL is unreachable for 10 s behind a TCP proxy that is cut: slowest burst of
     500 decorated calls (was asserted < 1 s in tests/distributed; needs Redis and PostgreSQL);
  4. the caller's pace while Redis restarts: see tests/distributed/test_distributed.py, which reports its per-call
     figures on stderr (it stops the Redis server, so it is not repeated here).
"""

from __future__ import annotations

import argparse
import atexit
import shutil
import os
import sys
import tempfile
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))  # tests.fix_proxy


def store_upsert() -> None:
    from flowcept.store.sqlite import SqliteStore

    work = tempfile.mkdtemp(prefix="flowcept-bench-pace-")

    atexit.register(shutil.rmtree, work, True)  # a run leaves no store files behind
    store = SqliteStore(os.path.join(work, "perf.sqlite"))
    recs = [{"type": "task", "task_id": f"t{i}", "workflow_id": "wf", "activity_id": f"a{i % 10}",
             "status": "FINISHED", "started_at": 1.0 + i, "ended_at": 2.0 + i, "used": {"x": i}}
            for i in range(100_000)]
    start = time.perf_counter()
    n = store.upsert(recs)
    elapsed = time.perf_counter() - start
    print(f"1. SQLite upsert of 100,000 tasks in one call: {elapsed:.3f} s ({n} written, "
          f"{store.count('tasks')} counted)")
    store.close()


def _settings(work: str, extra: str = "") -> None:
    from flowcept.settings import reload_settings

    path = os.path.join(work, "settings.yaml")
    with open(path, "w") as f:
        f.write(f"mq:\n  enabled: true\n  type: redis\n  host: 127.0.0.1\n  channel: bench_pace_{uuid.uuid4().hex}\n"
                f"databases:\n  sqlite:\n    path: {work}/store.sqlite\n{extra}"
                "project:\n  dump_buffer:\n    enabled: false\n")
    os.environ["FLOWCEPT_SETTINGS_PATH"] = path
    reload_settings()


def stop_latency() -> None:
    from flowcept import Flowcept, flowcept_task

    work = tempfile.mkdtemp(prefix="flowcept-bench-pace-")

    atexit.register(shutil.rmtree, work, True)  # a run leaves no store files behind
    _settings(work)

    @flowcept_task
    def double(x):
        return 2 * x

    with Flowcept(start_persistence=True, check_safe_stops=True):
        double(1)  # warm: connections, keeper thread, schema
    with Flowcept(start_persistence=True, check_safe_stops=True) as f:
        double(2)
        started = time.monotonic()
    elapsed = time.monotonic() - started
    stored = Flowcept.db.count("tasks", {"workflow_id": f.workflow_id})
    print(f"2. stop() with an in-process keeper until the task is stored: {elapsed * 1000:.0f} ms ({stored} stored)")


def pace_while_postgres_cut(pg_dsn: str) -> None:
    from psycopg.conninfo import conninfo_to_dict

    from flowcept import Flowcept, flowcept_task
    from tests.distributed.test_distributed import pg_schema_uri
    from tests.fix_proxy import TcpProxy

    info = conninfo_to_dict(pg_dsn)
    proxy = TcpProxy((info.get("host") or "127.0.0.1", int(info.get("port") or 5432)))
    proxy.start()
    with pg_schema_uri(pg_dsn, proxy.port) as uri:
        work = tempfile.mkdtemp(prefix="flowcept-bench-pace-")
        atexit.register(shutil.rmtree, work, True)  # a run leaves no store files behind
        _settings(work, f"  postgres:\n    enabled: true\n    uri: '{uri}'\n")

        @flowcept_task
        def double(x):
            return 2 * x

        slowest, cut_at = 0.0, None
        with Flowcept(workflow_name="pace", start_persistence=True, check_safe_stops=True) as f:
            for b in range(70):
                if b == 10:
                    proxy.cut()
                    cut_at = time.monotonic()
                if cut_at is not None and time.monotonic() - cut_at > 10:
                    proxy.start()
                    cut_at = None
                t0 = time.perf_counter()
                for i in range(500):
                    double(b * 500 + i)
                slowest = max(slowest, time.perf_counter() - t0)
                time.sleep(0.2)
            if cut_at is not None:
                proxy.start()
        stored = Flowcept.db.count("tasks", {"workflow_id": f.workflow_id})
        Flowcept.db.close()
        print(f"3. slowest burst of 500 calls while PostgreSQL was cut for 10 s: {slowest * 1000:.0f} ms "
              f"({stored} of 35000 stored)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-redis", action="store_true")
    parser.add_argument("--pg-dsn", default="postgresql://postgres@127.0.0.1:5432/test")
    opts = parser.parse_args()
    store_upsert()
    if not opts.skip_redis:
        stop_latency()
        pace_while_postgres_cut(opts.pg_dsn)


if __name__ == "__main__":
    main()
