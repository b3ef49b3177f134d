"""The distributed pipeline: producers -> Redis Streams or RabbitMQ -> keeper -> store (PostgreSQL when reachable,
else SQLite).

Run: python bench/bench_distributed.py [--calls N] [--pg-dsn DSN] [--sqlite] [--brokers redis,rabbitmq]

Needs Redis on 127.0.0.1:6379 (and RabbitMQ on 127.0.0.1:5672, guest/guest, for the rabbitmq figure). Prints:
  1. us per ``@flowcept_task`` call with the redis transport and a keeper thread in the same process writing the
     store (median of 5 runs of N calls, timed up to the last call; then stop() waits until all are stored);
  2. end-to-end throughput, for each broker: one producer process -> broker -> one keeper process -> store, tasks/s
     counted in the store (from the producer's start until the store holds all N tasks and the broker has no
     unacknowledged batch); and the CPU time each party used meanwhile, per task: the producer, the broker's
     server, the keeper and PostgreSQL's processes (all of them: backends, WAL writer, checkpointer), read from
     /proc. On a machine of C cores the parties together cannot go faster than C / (their CPU per task);
  3. the producer's peak RSS for 1,000,000 calls while no keeper runs (retained copies are bounded).
"""

from __future__ import annotations

import argparse
import atexit
import glob
import shutil
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid

PRODUCER = """
import resource, sys, time
from flowcept import Flowcept, flowcept_task

@flowcept_task
def double(x):
    return 2 * x

n, wf = int(sys.argv[1]), sys.argv[2]
t0 = time.perf_counter()
with Flowcept(workflow_id=wf, start_persistence=False, save_workflow=False):
    for i in range(n):
        double(i)
print(f"{time.perf_counter() - t0:.3f} {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss} {time.process_time():.3f}")
"""


def _settings(work: str, stream: str, dsn: str | None, broker: str = "redis") -> str:
    path = os.path.join(work, "settings.yaml")
    with open(path, "w") as f:
        f.write(f"mq:\n  enabled: true\n  type: {broker}\n  host: 127.0.0.1\n  channel: {stream}\n"
                f"databases:\n  sqlite:\n    path: {os.path.join(work, 'store.sqlite')}\n"
                + (f"  postgres:\n    enabled: true\n    uri: {dsn}\n" if dsn else "")
                + "project:\n  dump_buffer:\n    enabled: false\n")
    return path


def _server_pids(broker: str, dsn: str | None) -> dict[str, list[int]]:
    """The processes of the broker's server and of PostgreSQL (when it is the store) on this machine, by /proc."""
    names = {"redis": ("redis-server",), "rabbitmq": ("beam.smp", "erl_child_setup", "epmd")}[broker]
    found: dict[str, list[int]] = {broker: []}
    if dsn:
        found["postgres"] = []
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            with open(stat) as f:
                comm = f.read().split(") ")[0].split(" (", 1)[1]
        except (OSError, IndexError):
            continue
        pid = int(stat.split("/")[2])
        if comm in names:
            found[broker].append(pid)
        elif dsn and comm in ("postgres", "postmaster"):
            found["postgres"].append(pid)
    return found


def _cpu_seconds(pids: list[int]) -> dict[int, float]:
    """User + system CPU seconds of each of these processes so far (one that has ended is left out)."""
    ticks = os.sysconf("SC_CLK_TCK")
    seconds = {}
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(") ", 1)[1].split()
        except OSError:
            continue
        seconds[pid] = (int(fields[11]) + int(fields[12])) / ticks  # utime, stime (fields 14 and 15 of stat)
    return seconds


def _usable_pg(dsn: str) -> bool:
    try:
        from flowcept.store.postgres import PostgresStore

        store = PostgresStore(dsn)
        store.count("tasks", {"workflow_id": "-"})
        store.close()
        return True
    except Exception:  # noqa: BLE001
        return False


def _drained(client, stream: str) -> bool:
    """Whether the keepers' group has read and acknowledged every entry of the stream."""
    from flowcept.transport.redis import DEFAULT_GROUP

    groups = [g for g in client.xinfo_groups(stream) if g["name"] in (DEFAULT_GROUP, DEFAULT_GROUP.encode())]
    return bool(groups) and groups[0]["pending"] == 0 and groups[0].get("lag", 0) == 0


def _rabbitmq_drained(queue: str) -> bool:
    """Whether the keepers' queue holds no message, delivered or not (read on a connection that consumes nothing)."""
    import pika

    conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", 5672))
    try:
        ok = conn.channel().queue_declare(queue, passive=True).method
        return ok.message_count == 0
    finally:
        conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--pg-dsn", default=os.environ.get("FLOWCEPT_TEST_PG_DSN",
                                                           "postgresql://postgres@127.0.0.1:5432/test"))
    parser.add_argument("--sqlite", action="store_true", help="use SQLite even when PostgreSQL answers")
    parser.add_argument("--parts", default="123", help="which measurements to run, e.g. 2 (default 123)")
    parser.add_argument("--e2e-runs", type=int, default=3, help="end-to-end runs (the median is reported)")
    parser.add_argument("--brokers", default="redis,rabbitmq", help="brokers for part 2 (default redis,rabbitmq)")
    opts = parser.parse_args()
    work = tempfile.mkdtemp(prefix="flowcept-bench-dist-")
    atexit.register(shutil.rmtree, work, True)  # a run leaves no store files behind
    os.chdir(work)
    os.environ["HOME"] = work
    dsn = None if opts.sqlite or not _usable_pg(opts.pg_dsn) else opts.pg_dsn
    stream = f"flowcept_bench_{uuid.uuid4().hex[:8]}"
    os.environ["FLOWCEPT_SETTINGS_PATH"] = _settings(work, stream, dsn)
    import redis

    client = redis.Redis(host="127.0.0.1", port=6379)
    store_name = "postgres" if dsn else "sqlite"
    print(f"store: {store_name}; stream: {stream}; calls: {opts.calls}")

    from flowcept import Flowcept, flowcept_task
    from flowcept.settings import reload_settings
    from flowcept.store import make_store

    reload_settings()

    @flowcept_task
    def double(x):
        return 2 * x

    try:
        # 1. per call, in-process keeper
        samples, stops = [], []
        for _ in range(5 if "1" in opts.parts else 0):
            with Flowcept(start_persistence=True, check_safe_stops=True) as f:
                t0 = time.perf_counter()
                for i in range(opts.calls):
                    double(i)
                samples.append((time.perf_counter() - t0) / opts.calls * 1e6)
                t1 = time.perf_counter()
            stops.append(time.perf_counter() - t1)
            store = make_store(reload_settings())
            assert store.count("tasks", {"workflow_id": f.workflow_id}) == opts.calls
            store.close()
        if samples:
            print(f"1. @flowcept_task, redis + in-process keeper -> {store_name}: "
                  f"{statistics.median(samples):.2f} us/call (median of 5 x {opts.calls}); "
                  f"stop() until all stored: {statistics.median(stops):.2f} s")

        # 2. end to end: producer process -> broker -> keeper process -> store
        script = os.path.join(work, "producer.py")
        with open(script, "w") as fh:
            fh.write(textwrap.dedent(PRODUCER))
        for broker in (opts.brokers.split(",") if "2" in opts.parts else ()):
            channel = f"flowcept_bench_{broker}_{uuid.uuid4().hex[:8]}"
            os.environ["FLOWCEPT_SETTINGS_PATH"] = _settings(work, channel, dsn, broker)
            rates, shares = [], []
            for _ in range(opts.e2e_runs):
                keeper = subprocess.Popen([sys.executable, "-m", "flowcept.keeper"], stderr=subprocess.DEVNULL)
                time.sleep(1.0)  # keeper connected and idle
                wf = f"bench-{uuid.uuid4().hex[:8]}"
                store = make_store(reload_settings())
                cpu0 = {name: _cpu_seconds(pids) for name, pids in _server_pids(broker, dsn).items()}
                keeper0 = _cpu_seconds([keeper.pid])[keeper.pid]
                t0 = time.perf_counter()
                out = subprocess.run([sys.executable, script, str(opts.calls), wf], capture_output=True, text=True,
                                     check=True).stdout.split()
                # Counting 200,000 rows takes tens of ms of the server's CPU: poll the broker (every batch delivered
                # and acknowledged, i.e. committed) and count in the store once it says so.
                drained = ((lambda: _drained(client, channel)) if broker == "redis"
                           else (lambda: _rabbitmq_drained(f"{channel}.flowcept_keeper")))
                while not (drained() and store.count("tasks", {"workflow_id": wf}) >= opts.calls):
                    time.sleep(0.005)
                elapsed = time.perf_counter() - t0
                # Processes started meanwhile (the keeper's PostgreSQL backend connects on its first write) count
                # from zero.
                cpu = {"producer": float(out[2]), "keeper": _cpu_seconds([keeper.pid])[keeper.pid] - keeper0}
                for name, pids in _server_pids(broker, dsn).items():
                    now = _cpu_seconds(pids)
                    cpu[name] = sum(seconds - cpu0[name].get(pid, 0.0) for pid, seconds in now.items())
                shares.append({name: seconds / opts.calls * 1e6 for name, seconds in cpu.items()})
                keeper.terminate()
                keeper.wait(30)
                assert store.count("tasks", {"workflow_id": wf}) == opts.calls
                store.close()
                rates.append(opts.calls / elapsed)
                print(f"   {broker} run: {rates[-1]:,.0f} tasks/s ({opts.calls} tasks in {elapsed:.2f} s, producer "
                      f"alone {float(out[0]):.2f} s incl. interpreter start)")
            print(f"2. end to end, 1 producer process -> {broker} -> 1 keeper process -> {store_name}: "
                  f"{statistics.median(rates):,.0f} tasks/s (median of {len(rates)} x {opts.calls} tasks)")
            share = {name: statistics.median(run[name] for run in shares) for name in shares[0]}
            total = sum(share.values())
            cores = os.cpu_count() or 1
            print("   CPU per task (median of the runs): " + ", ".join(f"{name} {us:.2f} us" for name, us in
                                                                     share.items())
                  + f"; in all {total:.2f} us: on {cores} cores at most {cores / total * 1e6:,.0f} tasks/s")
            if broker == "redis":
                client.delete(channel, *client.scan_iter(f"{channel}:*"))
            else:
                _delete_rabbitmq(channel)
        os.environ["FLOWCEPT_SETTINGS_PATH"] = _settings(work, stream, dsn)
        reload_settings()

        # 3. producer memory with no keeper running
        if "3" not in opts.parts:
            return
        wf = f"bench-{uuid.uuid4().hex[:8]}"
        out = subprocess.run([sys.executable, script, "1000000", wf], capture_output=True, text=True,
                             check=True).stdout.split()
        print(f"3. producer of 1,000,000 tasks with the keeper stopped: peak RSS {int(out[1]) / 1024:.0f} MiB "
              f"({float(out[0]):.1f} s)")
    finally:
        client.delete(stream, *client.scan_iter(f"{stream}:*"))


def _delete_rabbitmq(exchange: str) -> None:
    import pika

    conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", 5672))
    channel = conn.channel()
    channel.queue_delete(f"{exchange}.flowcept_keeper")
    channel.exchange_delete(exchange)
    conn.close()


if __name__ == "__main__":
    main()
