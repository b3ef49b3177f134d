"""Adapters: the cost the Dask adapter adds per Dask task, and MQTT messages/s into the store.

Run: python bench/bench_adapters.py [--tasks N] [--rounds R] [--messages M]

Prints:
  1. Dask: a LocalCluster with 2 process workers (1 thread each) runs N trivial tasks (``client.map`` + ``gather``)
     R times with the adapter off and R times on, alternating, in one run. Reported for wall time and for the CPU
     time of all processes (client, scheduler, workers; steadier on a shared machine): the medians per round,
     Dask's own cost per task (off), the added cost per task (on - off), and that cost as a share of Dask's. "On"
     includes the final collection at ``stop()`` and the client storing every record (counted in the store).
  2. MQTT: M QoS 1 messages published to the Mosquitto broker on 127.0.0.1:1883 (in chunks that stay inside the
     broker's per-client queue), from the first publish until ``stop()`` returned with all M stored: messages/s
     into the store; beside it, a bare paho subscriber receiving the same flow (no flowcept), measured the same way.
"""

from __future__ import annotations

import argparse
import atexit
import shutil
import json
import os
import statistics
import tempfile
import time
import uuid


def noop(x):
    return x


def bench_dask(n: int, rounds: int) -> None:
    from distributed import Client, LocalCluster

    from flowcept import Flowcept

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        client.gather(client.map(noop, range(500), pure=False))  # warm-up: workers, imports, connections

        def cpu_seconds() -> float:
            # CPU time of every process involved (client, scheduler, workers): less sensitive than wall time to
            # other programs on a shared machine.
            workers = client.run(time.process_time)
            return time.process_time() + client.run_on_scheduler(time.process_time) + sum(workers.values())

        def one_round(on: bool) -> tuple[float, float]:
            c0, t0 = cpu_seconds(), time.perf_counter()
            if on:
                with Flowcept(interceptors=["dask"], dask_client=client, save_workflow=False) as fc:
                    client.gather(client.map(noop, range(n), pure=False))
            else:
                client.gather(client.map(noop, range(n), pure=False))
            elapsed, cpu = time.perf_counter() - t0, cpu_seconds() - c0
            if on:
                stored = len(Flowcept.db.task_query({"workflow_id": fc.workflow_id, "adapter_id": "dask"},
                                                    projection=["task_id"]))
                assert stored == n, f"{stored} of {n} tasks stored"
            return elapsed, cpu

        off, on = [], []
        for _ in range(rounds):
            off.append(one_round(False))
            on.append(one_round(True))
    for i, what in ((0, "wall"), (1, "cpu")):
        t_off, t_on = statistics.median(r[i] for r in off), statistics.median(r[i] for r in on)
        per_off, added = t_off / n * 1e6, (t_on - t_off) / n * 1e6
        print(f"dask {what}: {n} tasks x {rounds} rounds; off {t_off:.2f}s, on {t_on:.2f}s (medians of "
              f"{[round(r[i], 2) for r in off]} / {[round(r[i], 2) for r in on]}); Dask's own cost "
              f"{per_off:.0f} us/task, the adapter adds {added:.0f} us/task = {100 * added / per_off:.1f}% "
              f"(target <= 10%)")


def bench_mqtt(m: int) -> None:
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    from flowcept import Flowcept
    from flowcept.settings import reload_settings

    topic = f"flowcept-bench/{uuid.uuid4().hex}"
    payload = [json.dumps({"id": f"m{i}", "payload": {"i": i, "v": i * 0.5}, "operationId": "read"}).encode()
               for i in range(m)]
    pub = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{uuid.uuid4().hex}")
    pub.connect("127.0.0.1", 1883)
    pub.loop_start()

    def publish_all(received) -> None:
        for start in range(0, m, 500):
            for i in range(start, min(m, start + 500)):
                info = pub.publish(f"{topic}/x", payload[i], qos=1)
            info.wait_for_publish(30)
            while received() < start:  # stay inside mosquitto's per-client queue (1000 by default)
                time.sleep(0.001)
        while received() < m:
            time.sleep(0.001)

    # Bare paho subscriber, same flow.
    count = [0]
    sub = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-sub-{uuid.uuid4().hex}", clean_session=False)
    subscribed = [False]
    sub.on_message = lambda c, u, msg: count.__setitem__(0, count[0] + 1)
    sub.on_subscribe = lambda *a: subscribed.__setitem__(0, True)
    sub.connect("127.0.0.1", 1883)
    sub.subscribe(f"{topic}/bare/#", qos=1)
    sub.loop_start()
    while not subscribed[0]:
        time.sleep(0.01)
    bare_topic = topic
    topic = f"{bare_topic}/bare"
    t0 = time.perf_counter()
    publish_all(lambda: count[0])
    bare = time.perf_counter() - t0
    sub.disconnect()
    sub.loop_stop()
    topic = bare_topic

    with open("settings.yaml", "w") as fh:
        json.dump({"adapters": {"mq": {"kind": "broker", "queues": [f"{topic}/x"], "qos": 1,
                                       "client_id": f"bench-{uuid.uuid4().hex}",
                                       "tracked_keys": {"task_id": "id", "used": "payload",
                                                        "activity_id": "operationId"}}},
                   "project": {"dump_buffer": {"enabled": False}}}, fh)
    os.environ["FLOWCEPT_SETTINGS_PATH"] = os.path.abspath("settings.yaml")
    reload_settings()
    fc = Flowcept(interceptors=["mq"], save_workflow=False).start()
    adapter = fc._adapters[0]
    adapter.connected.wait(10)
    t0 = time.perf_counter()
    publish_all(lambda: adapter.received)
    fc.stop()
    elapsed = time.perf_counter() - t0
    stored = len(Flowcept.db.task_query({"workflow_id": fc.workflow_id}, projection=["task_id"]))
    assert stored == m, f"{stored} of {m} messages stored"
    pub.loop_stop()
    print(f"mqtt: {m} QoS 1 messages -> store (SQLite): {m / elapsed:,.0f} msg/s ({elapsed:.2f}s); "
          f"bare paho subscriber: {m / bare:,.0f} msg/s ({bare:.2f}s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--messages", type=int, default=20000)
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="flowcept-bench-adapters-")
    atexit.register(shutil.rmtree, work, True)  # a run leaves no store files behind
    os.chdir(work)
    os.environ["HOME"] = work  # the default SQLite store lands in this scratch folder
    bench_dask(args.tasks, args.rounds)
    bench_mqtt(args.messages)


if __name__ == "__main__":
    main()
