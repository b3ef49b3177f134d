"""Run the spec's distributed example end to end: one persistence process, N task processes, then check the store.

Usage: python run_example.py [--tasks N] [--mode redis|rabbitmq|embedded]

``redis``: the settings enable the Redis Streams transport (Redis on 127.0.0.1:6379); the persistence process runs
the keeper and writes the store. ``rabbitmq``: the same through RabbitMQ (127.0.0.1:5672, guest/guest). ``embedded``: no message queue; each task process writes the shared SQLite file
itself. The store is PostgreSQL when FLOWCEPT_POSTGRES_URI is set, else a SQLite file in the work folder.
Exits 0 when the store holds the workflow and exactly N ``double`` tasks with the right outputs.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=4, help="number of task processes (default 4)")
    parser.add_argument("--mode", choices=("redis", "rabbitmq", "embedded"), default="redis")
    parser.add_argument("--workdir", default=None, help="folder for settings, store and workflow_id.txt")
    args = parser.parse_args()

    work = args.workdir or tempfile.mkdtemp(prefix="flowcept_distributed_")
    os.makedirs(work, exist_ok=True)
    stream = f"flowcept_example_{uuid.uuid4().hex[:8]}"
    pg = os.environ.get("FLOWCEPT_POSTGRES_URI")
    settings = os.path.join(work, "settings.yaml")
    with open(settings, "w") as f:
        f.write(f"mq:\n  enabled: {'false' if args.mode == 'embedded' else 'true'}\n"
                f"  type: {'rabbitmq' if args.mode == 'rabbitmq' else 'redis'}\n"
                f"  host: 127.0.0.1\n  channel: {stream}\n"
                f"databases:\n  sqlite:\n    path: {os.path.join(work, 'flowcept.sqlite')}\n"
                + (f"  postgres:\n    enabled: true\n    uri: {pg}\n" if pg else "")
                + "project:\n  dump_buffer:\n    enabled: false\n")
    env = dict(os.environ, FLOWCEPT_SETTINGS_PATH=settings)
    wf_file = os.path.join(work, "workflow_id.txt")
    if os.path.exists(wf_file):
        os.remove(wf_file)

    persistence = None
    if args.mode != "embedded":
        persistence = subprocess.Popen([sys.executable, os.path.join(HERE, "persistence_starter.py")], cwd=work,
                                       env=env)
    else:
        # Embedded: the "persistence" process only creates the workflow; it exits after stop-less start.
        subprocess.run([sys.executable, os.path.join(HERE, "persistence_starter.py")], cwd=work, env=env,
                       check=True)
    deadline = time.monotonic() + 30
    while not (os.path.exists(wf_file) and open(wf_file).read().strip()):
        if time.monotonic() > deadline:
            print("persistence_starter.py did not write workflow_id.txt", file=sys.stderr)
            return 1
        time.sleep(0.05)
    workflow_id = open(wf_file).read().strip()

    procs = [subprocess.Popen([sys.executable, os.path.join(HERE, "distributed_tasks.py"), workflow_id], cwd=work,
                              env=env, stdout=subprocess.PIPE, text=True) for _ in range(args.tasks)]
    outputs = [p.communicate(timeout=120)[0] for p in procs]
    if any(p.returncode for p in procs) or any("Result: 42" not in out for out in outputs):
        print("a task process failed", outputs, file=sys.stderr)
        return 1

    os.environ["FLOWCEPT_SETTINGS_PATH"] = settings
    from flowcept.settings import reload_settings
    from flowcept.store import make_store

    store = make_store(reload_settings())
    try:
        deadline = time.monotonic() + 60
        while True:
            tasks = store.find("tasks", {"workflow_id": workflow_id, "activity_id": "double"})
            if len(tasks) >= args.tasks or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        workflows = store.find("workflows", {"workflow_id": workflow_id})
    finally:
        store.close()
        if persistence is not None:
            persistence.send_signal(signal.SIGTERM)  # the documented way to end it: the job scheduler kills it
            persistence.wait(30)
        if args.mode == "rabbitmq":
            _delete_rabbitmq_queues(stream)
        if args.mode == "redis":
            try:
                import redis

                client = redis.Redis(host="127.0.0.1", port=6379)
                client.delete(stream, *client.scan_iter(f"{stream}:*"))
            except Exception:  # noqa: BLE001
                pass
    ok = (len(tasks) == args.tasks and all(t.get("generated") == {"arg_0": 42} and t.get("used") == {"x": 21}
                                           and t.get("status") == "FINISHED" for t in tasks)
          and len(workflows) == 1 and workflows[0].get("name") == "distributed_process_example")
    print(f"workflow {workflow_id}: {len(tasks)} task record(s), {len(workflows)} workflow record(s) "
          f"[{args.mode}] -> {'OK' if ok else 'MISMATCH'}")
    return 0 if ok else 1


def _delete_rabbitmq_queues(exchange: str) -> None:
    try:
        import pika

        conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", 5672))
        channel = conn.channel()
        channel.queue_delete(f"{exchange}.flowcept_keeper")
        channel.exchange_delete(exchange)
        conn.close()
    except Exception:  # noqa: BLE001
        pass


if __name__ == "__main__":
    sys.exit(main())
