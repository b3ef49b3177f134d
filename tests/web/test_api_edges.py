"""Edge cases of the API in process (TestClient): paging over records without the sort key, bad bodies,
download names, a stream larger than one batch, objects and campaigns paging."""

from __future__ import annotations

import json
import time

import pytest

pytest.importorskip("fastapi")

from fastapi.testclient import TestClient  # noqa: E402

from tests.conftest import write_settings  # noqa: E402


@pytest.fixture(name="client", params=["sqlite", "postgres"])
def fixture_client(request, tmp_path, monkeypatch):
    """An in-process client over a store of each kind; PostgreSQL in a private schema."""
    from flowcept.web.app import create_app

    if request.param == "sqlite":
        write_settings(tmp_path, f"databases:\n  sqlite:\n    path: {tmp_path / 'w.sqlite'}\n"
                                 "web_server:\n  sse_poll_interval_sec: 0.2\n  sse_max_batch: 50\n", monkeypatch)
        yield from _serve(create_app())
        return
    from tests.store._pg import private_schema

    with private_schema(request.getfixturevalue("pg_dsn")) as dsn:
        write_settings(tmp_path, f"databases:\n  postgres:\n    enabled: true\n    uri: \"{dsn}\"\n"
                                 "web_server:\n  sse_poll_interval_sec: 0.2\n  sse_max_batch: 50\n", monkeypatch)
        yield from _serve(create_app())


def _serve(app):
    try:
        yield TestClient(app, raise_server_exceptions=False)
    finally:
        app.state.db.close()  # its connections, before the next test opens more


def _pages(client, path: str, limit: int) -> tuple[list, int]:
    items, cursor = [], None
    for _ in range(50):  # a cursor that never ends is a failure, not a hang
        res = client.get(f"/api/v1{path}", params={"limit": limit, **({"cursor": cursor} if cursor else {})})
        assert res.status_code == 200, res.text
        body = res.json()
        items += body["items"]
        cursor = body["next_cursor"]
        if not cursor:
            return items, body["count"]
    raise AssertionError(f"{path}: no last page after 50 pages")


def test_paging_keeps_records_without_the_sort_key(client):
    from flowcept import Flowcept

    db = Flowcept.db
    for i in range(4):
        db.insert_or_update_workflow({"workflow_id": f"wf-null-{i}", "name": f"n{i}"})
    db.insert_or_update_workflow({"workflow_id": "wf-a", "name": "a", "started_at": 100.0})
    db.insert_or_update_workflow({"workflow_id": "wf-b", "name": "b", "started_at": 100.0})
    for i in range(6):
        task = {"task_id": f"t{i}", "workflow_id": "wf-a", "activity_id": "x", "status": "SUBMITTED"}
        if i % 2:
            task["started_at"] = 100.0 + i // 3
        db.insert_or_update_task(task)
    wf_ids = ["wf-a", "wf-b", "wf-null-0", "wf-null-1", "wf-null-2", "wf-null-3"]  # newest first, nulls last
    task_ids = ["t0", "t2", "t4", "t1", "t3", "t5"]  # oldest first, nulls first
    for path, key, expected in [("/workflows", "workflow_id", wf_ids), ("/tasks/by_workflow/wf-a", "task_id",
                                 task_ids), ("/workflows/wf-a/timeline", "task_id", task_ids)]:
        for limit in (1, 2, 100):
            items, count = _pages(client, path, limit)
            assert ([i[key] for i in items], count) == (expected, len(expected)), (path, limit)


def test_bad_bodies_are_400_naming_the_field(client):
    for path, body, word in [("/tasks/query", {"limit": None}, "limit"), ("/tasks/query", {"limit": "x"}, "limit"),
                             ("/tasks/query", {"sort": [{"order": 1}]}, "sort"),
                             ("/stats/timeseries", {"limit": None}, "limit"),
                             ("/workflows/query", {"limit": True}, "limit")]:
        res = client.post(f"/api/v1{path}", json=body)
        assert res.status_code == 400 and word in res.json()["detail"], (path, body, res.text)
    res = client.post("/api/v1/tasks/query", json={"sort": [{"field": "task_id", "order": -1}], "limit": 5})
    assert (res.status_code, res.json()["items"]) == (200, [])


def test_download_names_are_safe_headers(client):
    from flowcept import Flowcept

    Flowcept.db.insert_or_update_workflow({"workflow_id": 'run→"1"', "name": "w"})
    Flowcept.db.insert_or_update_object(b"hello", object_id='a"b\r\nX-Evil: 1')
    res = client.get("/api/v1/workflows/run%E2%86%92%221%22/workflow_card")
    assert res.status_code == 200
    assert res.headers["content-disposition"] == (
        "attachment; filename=\"workflow_card_run__1_.md\"; filename*=UTF-8''workflow_card_run%E2%86%92%221%22.md")
    res = client.get("/api/v1/objects/a%22b%0D%0AX-Evil%3A%201/download")
    assert (res.status_code, res.content, "x-evil" in res.headers) == (200, b"hello", False)
    assert res.headers["content-disposition"] == (
        "attachment; filename=\"a_b__X-Evil: 1_v0.bin\"; filename*=UTF-8''a%22b%0D%0AX-Evil%3A%201_v0.bin")


def _streamed(client, workflow_id: str, since: float, wanted: int, within_s: float) -> list[str]:
    """The task ids the live stream sends for ``workflow_id`` until ``wanted`` came or ``within_s`` passed."""
    started, seen = time.time(), []
    with client.stream("GET", f"/api/v1/stream/tasks?workflow_id={workflow_id}&since={since}") as res:
        for line in res.iter_lines():
            if line.startswith("data:"):
                seen += [t["task_id"] for t in json.loads(line[5:])]
            if len(seen) >= wanted or time.time() - started > within_s:
                break
    return seen


def test_stream_sends_more_than_one_batch(client):
    from flowcept import Flowcept

    now = time.time()
    Flowcept.db.store.upsert([{"type": "task", "task_id": f"s-{i:03d}", "workflow_id": "wf-s", "activity_id": "x",
                               "status": "RUNNING", "started_at": now + i / 1000} for i in range(180)])
    assert _streamed(client, "wf-s", now - 5, 180, 20) == [f"s-{i:03d}" for i in range(180)]


def test_stream_sends_tasks_without_status_or_end(client):
    """A task with neither status nor ended_at (another tool's record) is streamed once, like any other."""
    from flowcept import Flowcept

    now = time.time()
    Flowcept.db.store.upsert([{"type": "task", "task_id": "bare", "workflow_id": "wf-b", "started_at": now},
                              {"type": "task", "task_id": "running", "workflow_id": "wf-b", "started_at": now + 0.001,
                               "status": "RUNNING"}])
    assert _streamed(client, "wf-b", now - 5, 2, 10) == ["bare", "running"]


def test_objects_and_campaigns_page(client):
    from flowcept import Flowcept

    for i in range(3):
        Flowcept.db.insert_or_update_object(b"x", object_id=f"obj-{i}")
        time.sleep(0.01)
    for i, camp in enumerate(["c-2", "c-1", "c-1", "c-3"]):
        Flowcept.db.insert_or_update_workflow({"workflow_id": f"wf-{i}", "campaign_id": camp, "started_at": i})
    items, count = _pages(client, "/campaigns", 1)
    assert ([(c["campaign_id"], c["workflow_count"]) for c in items], count) == (
        [("c-1", 2), ("c-2", 1), ("c-3", 1)], 3)
    assert client.get("/api/v1/campaigns?limit=0").status_code == 400
    first = client.get("/api/v1/objects?limit=1").json()
    assert ([o["object_id"] for o in first["items"]], first["count"], first["limit"]) == (["obj-2"], 3, 1)
    items, count = _pages(client, "/objects", 1)
    assert ([o["object_id"] for o in items], count) == (["obj-2", "obj-1", "obj-0"], 3)
