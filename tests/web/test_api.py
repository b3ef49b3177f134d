"""The web service's API over real HTTP, against a running `flowcept serve`, on SQLite and PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.parse

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from tests.conftest import write_settings  # noqa: E402
from tests.web.server_env import free_port, running_server  # noqa: E402
from tests.web.server_env import request as http  # noqa: E402

N_BIG = 100_000


@pytest.fixture(name="store_settings", params=["sqlite", "postgres"])
def fixture_store_settings(request, tmp_path, monkeypatch):
    """Settings (path) for a store of each kind; PostgreSQL in a private schema."""
    if request.param == "sqlite":
        yield write_settings(tmp_path, f"databases:\n  sqlite:\n    path: {tmp_path / 'web.sqlite'}\n", monkeypatch)
        return
    from tests.store._pg import private_schema

    with private_schema(request.getfixturevalue("pg_dsn")) as dsn:
        yield write_settings(tmp_path, f"databases:\n  postgres:\n    enabled: true\n    uri: \"{dsn}\"\n",
                             monkeypatch)


def _capture_workflow():
    """A small workflow: a parent task calling a child, a failing task; returns (controller, tasks by name)."""
    from flowcept import Flowcept, flowcept_task

    @flowcept_task(output_names="total")
    def child(x, password="s"):
        return x + 1

    @flowcept_task
    def parent(n):
        return [child(i) for i in range(n)]

    @flowcept_task
    def broken():
        raise ValueError("bad input")

    with Flowcept(workflow_name="web-demo", campaign_id="camp-web") as fc:
        parent(3)
        with pytest.raises(ValueError):
            broken()
    return fc


def _bulk_tasks(workflow_id: str, n: int) -> None:
    from flowcept import Flowcept

    store = Flowcept.db.store
    for start in range(0, n, 20_000):
        store.upsert([{"type": "task", "task_id": f"big-{i:06d}", "workflow_id": workflow_id, "activity_id": "step",
                       "started_at": 1000.0 + i, "ended_at": 1000.5 + i, "status": "FINISHED"}
                      for i in range(start, min(n, start + 20_000))])
    store.upsert([{"type": "workflow", "workflow_id": workflow_id, "name": "big", "started_at": 1000.0}])


@pytest.mark.timeout(600)
def test_api_routes_and_paging(store_settings, tmp_path):
    fc = _capture_workflow()
    _bulk_tasks("wf-big", N_BIG)
    with running_server(store_settings, tmp_path) as base:
        assert http(base, "/api/v1/health/live") == (200, {"status": "ok"})
        status, ready = http(base, "/api/v1/health/ready")
        assert (status, ready) == (200, {"status": "ok", "services": {"store": "ok"}})
        status, info = http(base, "/api/v1/info")
        assert status == 200 and info["read_only"] is True

        status, wfs = http(base, "/api/v1/workflows?limit=10")
        assert status == 200 and wfs["count"] == 2
        by_name = {w["name"]: w for w in wfs["items"]}
        assert by_name["web-demo"]["task_count"] == 5 and by_name["big"]["task_count"] == N_BIG
        assert [w["name"] for w in wfs["items"]] == ["web-demo", "big"]  # newest first

        status, wf = http(base, f"/api/v1/workflows/{fc.workflow_id}")
        assert status == 200
        assert (wf["name"], wf["status"], wf["task_count"], wf["status_counts"]) == (
            "web-demo", "FINISHED", 5, {"FINISHED": 4, "ERROR": 1})

        status, page = http(base, f"/api/v1/tasks?workflow_id={fc.workflow_id}&limit=10")
        assert status == 200 and page["count"] == 5 and page["next_cursor"] is None
        tasks = {t["activity_id"]: t for t in page["items"]}
        assert tasks["broken"]["status"] == "ERROR" and "bad input" in tasks["broken"]["stderr"]
        status, one = http(base, f"/api/v1/tasks/{tasks['parent']['task_id']}")
        assert status == 200 and one["used"] == {"n": 3} and one["generated"] == {"arg_0": [1, 2, 3]}

        status, graph = http(base, f"/api/v1/workflows/{fc.workflow_id}/dataflow")
        assert status == 200 and len(graph["nodes"]) == 5
        parent_id = tasks["parent"]["task_id"]
        assert sorted((e["source"], e["kind"]) for e in graph["edges"]) == [(parent_id, "parent")] * 3

        status, timeline = http(base, f"/api/v1/workflows/{fc.workflow_id}/timeline")
        assert status == 200 and [t["activity_id"] for t in timeline["items"]] == [
            "parent", "child", "child", "child", "broken"]
        assert set(timeline["items"][0]) <= {"task_id", "activity_id", "status", "started_at", "ended_at",
                                             "parent_task_id", "hostname", "subtype"}

        status, camps = http(base, "/api/v1/campaigns")
        assert status == 200 and {c["campaign_id"]: c["workflow_count"] for c in camps["items"]} == {"camp-web": 1}
        status, summary = http(base, f"/api/v1/stats/tasks/summary?workflow_id={fc.workflow_id}")
        assert {(r["activity_id"], r["status"]): r["count_task_id"] for r in summary["items"]} == {
            ("parent", "FINISHED"): 1, ("child", "FINISHED"): 3, ("broken", "ERROR"): 1}
        status, queried = http(base, "/api/v1/tasks/query", {"filter": {"activity_id": "child"},
                                                                "projection": ["used"], "limit": 5,
                                                                "sort": [{"field": "used.x", "order": -1}]})
        assert status == 200 and [t["used"]["x"] for t in queried["items"]] == [2, 1, 0]

        # Paging through 100,000 tasks: every task exactly once, in id order, cursors from the server.
        seen, cursor, pages = [], None, 0
        while True:
            path = "/api/v1/tasks?workflow_id=wf-big&limit=1000" + (f"&cursor={cursor}" if cursor else "")
            status, page = http(base, path)
            assert status == 200 and page["count"] == N_BIG
            seen.extend(t["task_id"] for t in page["items"])
            pages += 1
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == [f"big-{i:06d}" for i in range(N_BIG)] and pages == 101

        # Bad input: a 400 with the reason, never a 500.
        bad = {
            "/api/v1/tasks?filter_json=" + urllib.parse.quote('{"$where": "1"}'): "$where",
            "/api/v1/tasks?filter_json=" + urllib.parse.quote("{not json"): "not valid JSON",
            "/api/v1/tasks?limit=100000": "limit must be between 1 and 1000",
            "/api/v1/tasks?limit=0": "limit must be between 1 and 1000",
            "/api/v1/tasks?cursor=garbage!": "invalid cursor",
            "/api/v1/tasks?filter_json=" + urllib.parse.quote('{"used.x": {"$regex": "(a+)+$"}}'): "",
        }
        for path, reason in bad.items():
            status, body = http(base, path)
            if reason:
                assert status == 400 and reason in body["detail"], (path, body)
            else:
                assert status in (200, 400), (path, body)
        status, body = http(base, "/api/v1/query/secrets", {"filter": {}})
        assert status == 400 and "unknown scope" in body["detail"]
        assert http(base, "/api/v1/tasks/no-such-task")[0] == 404
        assert http(base, "/api/v1/workflows/no-such-workflow")[0] == 404

        # Read-only by default: deletes are refused and nothing is deleted.
        status, body = http(base, f"/api/v1/workflows/{fc.workflow_id}", method="DELETE")
        assert status == 403 and "allow_delete" in body["detail"]
        assert http(base, f"/api/v1/workflows/{fc.workflow_id}")[0] == 200
        assert http(base, "/api/v1/objects/anything", method="DELETE")[0] == 403

        # Chart data (Flowcept.db.resolve_chart_data): literal columns, and a spec read from the store.
        columns = {"columns": {"x": [1, 2], "y": [3, 4]}, "x": "x", "y": ["y"]}
        status, body = http(base, "/api/v1/stats/chart_data", {"data": columns})
        assert status == 200 and body == {"x_field": "x", "x": [1, 2], "series": {"y": [3, 4]}}
        spec = {"collection": "tasks", "filter": {"task_id": {"$in": ["big-000000", "big-000001"]}},
                "x": "task_id", "y": ["task_id"]}
        status, body = http(base, "/api/v1/stats/chart_data", {"data": spec, "context": {"workflow_id": "wf-big"}})
        assert status == 200 and body == {"x_field": "task_id", "x": ["big-000000", "big-000001"],
                                          "series": {"task_id": ["big-000000", "big-000001"]}}
        status, body = http(base, "/api/v1/stats/chart_data", {"spec": spec})
        assert status == 400 and "'data'" in body["detail"]


def test_live_stream_sends_new_tasks(store_settings, tmp_path, monkeypatch):
    """A task captured after the stream opened arrives as an SSE event."""
    import urllib.request

    from flowcept import Flowcept, flowcept_task

    text = open(store_settings).read() + "web_server:\n  sse_poll_interval_sec: 0.3\n"
    settings = write_settings(tmp_path, text, monkeypatch)

    @flowcept_task
    def tick(i):
        return i

    with Flowcept(workflow_name="live") as fc:
        tick(0)
        Flowcept.db.count("tasks")  # stored now
        with running_server(settings, tmp_path) as base:
            # The stream looks one second back from its cursor: tick(0), older than now, stays out of it.
            url = f"{base}/api/v1/stream/tasks?workflow_id={fc.workflow_id}&since={time.time() + 1.0}"
            with urllib.request.urlopen(url, timeout=30) as res:
                assert res.headers["content-type"].startswith("text/event-stream")
                time.sleep(1.0)
                tick(1)
                Flowcept.db.count("tasks")
                lines = []
                while not any(line.startswith("data: ") for line in lines):
                    lines.append(res.readline().decode().strip())
    import json

    [event] = [json.loads(line[6:]) for line in lines if line.startswith("data: ")]
    assert [(t["activity_id"], t["used"]) for t in event] == [("tick", {"i": 1})]
    assert "event: tasks" in lines


def test_token_rule(tmp_path, monkeypatch):
    settings = write_settings(tmp_path, f"databases:\n  sqlite:\n    path: {tmp_path / 't.sqlite'}\n", monkeypatch)
    # Binding beyond loopback without a token refuses to start, naming the setting.
    out = subprocess.run([sys.executable, "-m", "flowcept", "serve", "--host", "0.0.0.0", "--port",
                          str(free_port())], capture_output=True, text=True, timeout=60,
                         env={**__import__("os").environ, "FLOWCEPT_SETTINGS_PATH": settings})
    assert out.returncode == 2 and "web_server.token" in out.stderr
    with running_server(settings, tmp_path, "--token", "s3cret-token") as base:
        status, body = http(base, "/api/v1/workflows")
        assert status == 401 and "token" in body["detail"]
        assert http(base, "/api/v1/workflows", headers={"Authorization": "Bearer wrong"})[0] == 401
        status, body = http(base, "/api/v1/workflows", headers={"Authorization": "Bearer s3cret-token"})
        assert status == 200 and body["count"] == 0
        assert http(base, "/api/v1/health/live")[0] == 200
        assert http(base, "/api/v1/info?token=s3cret-token")[0] == 200
        assert http(base, "/", headers={})[0] == 401


def test_deletes_only_when_allowed(tmp_path, monkeypatch):
    from flowcept import Flowcept, FlowceptTask

    settings = write_settings(tmp_path, f"databases:\n  sqlite:\n    path: {tmp_path / 'd.sqlite'}\n"
                                        "web_server:\n  allow_delete: true\n", monkeypatch)
    with Flowcept(workflow_name="doomed", campaign_id="camp-d") as fc:
        pass
    port = free_port()
    with running_server(settings, tmp_path, port=port) as base:
        status, body = http(base, f"/api/v1/workflows/{fc.workflow_id}", method="DELETE")
        assert status == 200 and body["deleted"] == {"objects": 0, "tasks": 0, "agents": 0, "workflows": 1}
        assert http(base, f"/api/v1/workflows/{fc.workflow_id}")[0] == 404
    with Flowcept(workflow_name="doomed too", campaign_id="camp-d") as fc2:
        FlowceptTask(activity_id="t").end(generated={"y": 1})
    Flowcept.db.insert_or_update_object(b"payload", object_id="obj-d", workflow_id=fc2.workflow_id)
    Flowcept.db.insert_or_update_object(b"loose", object_id="obj-e")
    with running_server(settings, tmp_path, port=port) as base:
        status, body = http(base, "/api/v1/objects/obj-e", method="DELETE")
        assert status == 200 and body["deleted"] == {"objects": 1}
        assert http(base, "/api/v1/objects/obj-e", method="DELETE")[0] == 404
        assert http(base, "/api/v1/objects/obj-e")[0] == 404
        # The campaign's workflow, its task and its object (Flowcept.db.delete_campaign_data, one implementation).
        status, body = http(base, "/api/v1/campaigns/camp-d", method="DELETE")
        assert status == 200 and body["deleted"] == {"objects": 1, "tasks": 1, "agents": 0, "workflows": 1}
        assert http(base, "/api/v1/campaigns/camp-d")[0] == 404


def test_lineage_and_objects(store_settings, tmp_path):
    """Upstream/downstream walks one direction only; objects list, history and byte-exact downloads."""
    from flowcept import Flowcept, FlowceptTask

    with Flowcept(workflow_name="diamond") as fc:
        # A diamond through explicit dependencies: source -> (left, right) -> join.
        s = FlowceptTask(activity_id="source")
        s.end(generated={"v": 1})
        lt = FlowceptTask(activity_id="left")
        lt._task.dependencies = [s.get_id()]
        lt.end()
        rt = FlowceptTask(activity_id="right")
        rt._task.dependencies = [s.get_id()]
        rt.end()
        j = FlowceptTask(activity_id="join")
        j._task.dependencies = [lt.get_id(), rt.get_id()]
        j.end()
        db = Flowcept.db
        payload_v0, payload_v1 = b"\x00weights-v0" * 1000, b"\x01weights-v1" * 1000
        db.insert_or_update_object(payload_v0, object_id="model-1", task_id=s.get_id(), object_type="ml_model",
                                   control_version=True)
        db.insert_or_update_object(payload_v1, object_id="model-1", task_id=s.get_id(), object_type="ml_model",
                                   control_version=True)
    with running_server(store_settings, tmp_path) as base:
        status, up = http(base, f"/api/v1/tasks/{lt.get_id()}/upstream")
        assert status == 200 and [t["activity_id"] for t in up["items"]] == ["source"]
        status, up = http(base, f"/api/v1/tasks/{j.get_id()}/upstream")
        assert sorted(t["activity_id"] for t in up["items"]) == ["left", "right", "source"]
        status, down = http(base, f"/api/v1/tasks/{lt.get_id()}/downstream")
        assert [t["activity_id"] for t in down["items"]] == ["join"]  # never its sibling "right"
        status, down = http(base, f"/api/v1/tasks/{s.get_id()}/downstream?depth=1")
        assert sorted(t["activity_id"] for t in down["items"]) == ["left", "right"]
        assert http(base, "/api/v1/tasks/nope/upstream")[0] == 404
        status, graph = http(base, f"/api/v1/workflows/{fc.workflow_id}/dataflow")
        names = {n["task_id"]: n["activity_id"] for n in graph["nodes"]}
        assert sorted((names[e["source"]], names[e["target"]], e["kind"]) for e in graph["edges"]) == [
            ("left", "join", "dependency"), ("right", "join", "dependency"),
            ("source", "left", "dependency"), ("source", "right", "dependency")]

        status, objs = http(base, "/api/v1/objects?object_type=ml_model")
        assert status == 200 and [(o["object_id"], o["version"]) for o in objs["items"]] == [("model-1", 1)]
        status, hist = http(base, "/api/v1/objects/model-1/history")
        assert [h["version"] for h in hist["items"]] == [1, 0]
        status, meta = http(base, "/api/v1/objects/model-1")
        assert (meta["object_id"], meta["version"], meta["object_size_bytes"]) == ("model-1", 1, len(payload_v1))
        import urllib.request

        with urllib.request.urlopen(f"{base}/api/v1/objects/model-1/download", timeout=30) as res:
            assert res.read() == payload_v1
            assert res.headers["X-Content-SHA256"] == meta["data_sha256"]
        with urllib.request.urlopen(f"{base}/api/v1/objects/model-1/versions/0/download", timeout=30) as res:
            assert res.read() == payload_v0
        status, body = http(base, "/api/v1/objects/no-such-object")
        assert status == 404 and "no-such-object" in body["detail"]
        assert http(base, "/api/v1/objects/model-1/versions/7")[0] == 404
