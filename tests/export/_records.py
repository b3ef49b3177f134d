"""A known workflow, written into the configured store through Flowcept.db (exact times, counts and values)."""

from __future__ import annotations

import uuid

BASE = 1_700_000_000.0
#: (suffix, activity, start offset, duration or None, status, used, generated, extra fields)
TASKS = [
    ("load1", "load", 0.0, 1.0, "FINISHED", {"path": "a.csv"}, {"data": [1, 2, 3]}, {}),
    ("load2", "load", 0.5, 3.0, "FINISHED", {"path": "b.csv"}, {"data": [4, 5]}, {}),
    ("train1", "train", 4.0, 0.5, "FINISHED", {"data": [1, 2, 3], "lr": 0.1, "api_key": "SECRET-KEY"},
     {"model": {"w": [0.5, 0.25]}}, {"dependencies": ["load1"]}),
    ("train2", "train", 4.5, 1.5, "FINISHED", {"data": [4, 5], "lr": 0.1}, {"model": {"w": [0.75]}}, {}),
    ("train3", "train", 5.0, 2.5, "ERROR", {"data": [4, 5], "lr": 0.2}, {},
     {"stderr": "Traceback (most recent call last):\nValueError: diverged"}),
    ("step1", "train_step", 4.1, 0.25, "FINISHED", {"batch": 1}, {"loss": 0.9}, {"parent": "train1"}),
    ("eval1", "eval", 8.0, None, "RUNNING", {"model": {"w": [0.5, 0.25]}}, {}, {}),
]


def telemetry(i: int) -> dict:
    """A telemetry snapshot (the layout of flowcept.capture.telemetry)."""
    return {"timestamp": BASE + 1 + i, "cpu": {"percent_all": 10.0 * (i + 1)},
            "memory": {"virtual": {"used": (2 + i) * 1_000_000_000, "percent": 10.0}},
            "process": {"io_counters": {"read_bytes": 1_000_000 * i, "write_bytes": 2_000_000 * i}}}


def make_records(tag: str | None = None) -> tuple[str, list[dict]]:
    """``(workflow_id, records)`` of the known workflow; ids are unique per call."""
    tag = tag or uuid.uuid4().hex[:8]
    wf = f"wf-{tag}"
    records = [{"type": "workflow", "workflow_id": wf, "campaign_id": f"camp-{tag}", "name": "card_wf",
                "started_at": BASE, "ended_at": BASE + 10.0, "status": "FINISHED", "user": "alice",
                "hostname": "node1", "used": {"epochs": 3, "db_password": "hunter2"},
                "machine_info": {"instrumentation_1": {"hostname": "node1",
                                                       "platform": {"system": "Linux", "release": "6.1",
                                                                    "machine": "x86_64"},
                                                       "cpu": {"brand_raw": "Test CPU", "count": 8},
                                                       "memory": {"virtual": {"total": 16e9}},
                                                       "disk": {"total": 500e9}}}}]
    for i, (suffix, activity, offset, duration, status, used, generated, extra) in enumerate(TASKS):
        task = {"type": "task", "task_id": f"{tag}-{suffix}", "workflow_id": wf, "campaign_id": f"camp-{tag}",
                "activity_id": activity, "started_at": BASE + offset, "status": status, "used": used,
                "hostname": "node1" if i % 2 == 0 else "node2"}
        if duration is not None:
            task["ended_at"] = BASE + offset + duration
            task["telemetry_at_end"] = telemetry(i)
            task["telemetry_summary"] = {"duration_sec": duration, "cpu": {"user_time_diff": 0.5,
                                                                           "system_time_diff": 0.25},
                                         "disk": {"read_bytes_diff": 1_000_000, "write_bytes_diff": 2_000_000}}
        if generated:
            task["generated"] = generated
        if "dependencies" in extra:
            task["dependencies"] = [f"{tag}-{d}" for d in extra["dependencies"]]
        if "parent" in extra:
            task["parent_task_id"] = f"{tag}-{extra['parent']}"
        if "stderr" in extra:
            task["stderr"] = extra["stderr"]
        records.append(task)
    return wf, records


def tid(workflow_id: str, suffix: str) -> str:
    """The task id of ``suffix`` in the workflow ``workflow_id`` made by :func:`make_records`."""
    return f"{workflow_id[3:]}-{suffix}"
