"""With the Redis transport on, object metadata flows through the stream while the content stays out of it."""

from __future__ import annotations

import hashlib
import os
import uuid

import orjson
import pytest

from flowcept import Flowcept, flowcept_task
from tests.conftest import write_settings

MIB = 1024 * 1024


@flowcept_task
def train(size: int) -> dict:
    payload = os.urandom(size)
    Flowcept.insert_or_update_ml_model(payload, object_id="weights", control_version=True)
    return {"sha": hashlib.sha256(payload).hexdigest()}


@pytest.mark.redis
def test_object_metadata_rides_the_stream_content_does_not(kind, settings_text, tmp_path, monkeypatch):
    """The stream carries the object record (no content); the store has it at once and the task's lineage after."""
    redis = pytest.importorskip("redis")
    stream = f"fc_test_objects_{uuid.uuid4().hex[:12]}"
    write_settings(tmp_path, settings_text + f"mq:\n  enabled: true\n  type: redis\n  host: 127.0.0.1\n"
                                             f"  channel: {stream}\n", monkeypatch)
    client = redis.Redis(host="127.0.0.1", port=6379)
    try:
        with Flowcept(workflow_name="objects over redis") as fc:
            sha = train(2 * MIB)["sha"]
            # Published by the producer itself: readable before any keeper stored the task.
            assert Flowcept.db.get_blob_fingerprint("weights")["data_sha256"] == sha
        entries = client.xrange(stream)
        records = [r for _, fields in entries for r in orjson.loads(fields[b"b"])]
        objects = [r for r in records if r.get("type") == "object"]
        assert len(objects) == 1
        meta = objects[0]
        assert (meta["object_id"], meta["version"], meta["data_sha256"], meta["object_size_bytes"]) == (
            "weights", 0, sha, 2 * MIB)
        assert (meta["object_type"], meta["workflow_id"]) == ("ml_model", fc.current_workflow_id)
        assert "data" not in meta
        assert max(len(fields[b"b"]) for _, fields in entries) < 64 * 1024  # the 2 MiB stayed out of Redis
        task = Flowcept.db.task_query({"workflow_id": fc.current_workflow_id, "activity_id": "train"})[0]
        assert task["generated"]["object:weights"] == {"object_id": "weights", "version": 0, "data_sha256": sha}
        assert meta["task_id"] == task["task_id"]
    finally:
        client.delete(stream, *client.scan_iter(f"{stream}:*"))
