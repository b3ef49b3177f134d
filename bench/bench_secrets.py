"""Cost of redaction (project.redact on, the default) against redaction off, in the same run.

Run: python bench/bench_secrets.py [--calls N] [--rounds R]

Default pipeline (embedded SQLite store + JSONL buffer file). For each case, rounds alternate redaction on and off
(on, off, on, off...: the machine's drift hits both alike) and each prints the median ns per call over the rounds:

* flat out: N calls in a ``with Flowcept()`` block, timed until ``stop()`` returned, then the stored records
  counted (all N, or the bench fails); the flusher shares the GIL and the cores with the caller, so its per-record
  work shows here;
* capture: bursts of 1,000 calls, each burst's records stored between bursts, untimed (what the caller pays).

Each figure is ns per call minus a bare call of the same shape measured in the same round.

Then the flusher step alone: ns per record of the redaction pass over a 2,000-record batch, against encoding the
same batch (``encode_batch``), for plain records, records with a 10-key dict argument, and records with secrets.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=6)
    opts = parser.parse_args()
    work = tempfile.mkdtemp(prefix="flowcept-bench-secrets-")
    os.chdir(work)
    os.environ["HOME"] = work
    os.environ.pop("FLOWCEPT_SETTINGS_PATH", None)

    from flowcept import Flowcept, flowcept_task
    from flowcept.settings import reload_settings

    @flowcept_task
    def plain(x):
        return x + 1

    @flowcept_task(output_names="y")
    def with_dict(d):
        return 1

    @flowcept_task
    def login(user, password):
        return 1

    arg10 = {f"key_{i}": i for i in range(10)}
    cases = {
        "@flowcept_task, no secret-looking parameter": lambda n: [plain(i) for i in range(n)],
        "@flowcept_task, 10-key dict argument": lambda n: [with_dict(arg10) for _ in range(n)],
        "@flowcept_task, login(user, password)": lambda n: [login("alice", "s3cr3t") for _ in range(n)],
    }
    results: dict = {(name, regime, on): [] for name in cases for regime in ("flat out", "capture")
                     for on in (True, False)}
    bare_ns = []
    for round_no in range(opts.rounds):
        t0 = time.perf_counter_ns()
        _bare(opts.calls)
        bare_ns.append((time.perf_counter_ns() - t0) / opts.calls)
        for on in (True, False) if round_no % 2 == 0 else (False, True):
            os.environ["FLOWCEPT_REDACT"] = "true" if on else "false"
            reload_settings()
            for name, run in cases.items():
                t0 = time.perf_counter_ns()
                with Flowcept(workflow_name="bench_secrets") as f:
                    run(opts.calls)
                elapsed = time.perf_counter_ns() - t0  # until stop() returned
                stored = Flowcept.db.count("tasks", {"workflow_id": f.workflow_id})
                assert stored == opts.calls, (name, stored)
                results[(name, "flat out", on)].append(elapsed / opts.calls - bare_ns[-1])
            with Flowcept(workflow_name="bench_secrets_bursts") as f:
                buffer = f._buffer
                for name, run in cases.items():
                    burst = 0
                    for _ in range(max(1, opts.calls // 1000)):
                        t0 = time.perf_counter_ns()
                        run(1000)
                        burst += time.perf_counter_ns() - t0
                        buffer.flush()
                    results[(name, "capture", on)].append(burst / (max(1, opts.calls // 1000) * 1000)
                                                          - bare_ns[-1])
            assert f.report.dropped == 0
    print(f"== python {sys.version.split()[0]}, {os.cpu_count()} cores; median over {opts.rounds} rounds of "
          f"{opts.calls} calls; every figure minus a bare call ({statistics.median(bare_ns):.0f} ns)")
    print(f"{'case':46s} {'regime':9s} {'redact on':>10s} {'off':>10s} {'on/off':>7s}  (ns per call; per-round "
          f"on/off range)")
    for name in cases:
        for regime in ("flat out", "capture"):
            ons, offs = results[(name, regime, True)], results[(name, regime, False)]
            on, off = statistics.median(ons), statistics.median(offs)
            per_round = [a / b for a, b in zip(ons, offs)]
            print(f"{name:46s} {regime:9s} {on:10.0f} {off:10.0f} {on / off:7.2f}  "
                  f"{min(per_round):.2f}-{max(per_round):.2f}")
    _flusher_step()


def _bare(n: int) -> None:
    def bare(x):
        return x + 1

    [bare(i) for i in range(n)]


def _flusher_step() -> None:
    from flowcept.buffer import encode_batch
    from flowcept.redact import Redactor
    from flowcept.settings import REDACT_KEYS

    redactor = Redactor(True, REDACT_KEYS)

    def record(i: int, used: dict) -> dict:
        return {"type": "task", "task_id": f"0123456789abcdef{i}", "workflow_id": "5b0e2c3a-7d1f-4f63-9c2e",
                "campaign_id": "0c1d2e3f-4a5b-4c6d-8e9f", "activity_id": "f", "hostname": "node1",
                "used": used, "started_at": 1.7e9, "ended_at": 1.7e9, "status": "FINISHED",
                "generated": {"arg_0": i}}

    batches = {
        "plain records": lambda: [record(i, {"x": i}) for i in range(2000)],
        "10-key dict argument": lambda: [record(i, {"d": {f"key_{k}": k for k in range(10)}}) for i in range(2000)],
        "password argument": lambda: [record(i, {"user": "a", "password": "s"}) for i in range(2000)],
    }
    print(f"\nflusher step, ns per record (best of 7 passes over a 2,000-record batch)")
    print(f"{'batch':24s} {'redaction':>10s} {'encoding':>10s}")
    for name, make in batches.items():
        best_r, best_e = float("inf"), float("inf")
        for _ in range(7):
            records = make()
            t0 = time.perf_counter_ns()
            redactor(records)
            t1 = time.perf_counter_ns()
            encode_batch(records)
            t2 = time.perf_counter_ns()
            best_r, best_e = min(best_r, (t1 - t0) / 2000), min(best_e, (t2 - t1) / 2000)
        print(f"{name:24s} {best_r:10.0f} {best_e:10.0f}")


if __name__ == "__main__":
    main()
