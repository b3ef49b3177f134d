"""OpenLineage export on both stores: every event parses with the client's own classes; runIds are stable UUIDs;
parent, errorMessage and flowcept facets are exact; events POST to a real HTTP server."""

from __future__ import annotations

import http.server
import json
import socket
import threading
import uuid

import pytest

from flowcept.export import export_workflow
from flowcept.export.openlineage import FlowceptRunFacet, run_uuid
from tests.export._records import BASE, TASKS, make_records, tid


def parse_event(doc: dict):
    """Rebuild a RunEvent from its JSON with the openlineage client's classes (they validate runId UUIDs, event
    times and URIs); the rebuilt event must serialize back to the same JSON."""
    from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
    from openlineage.client.facet_v2 import error_message_run, job_type_job, parent_run
    from openlineage.client.serde import Serde

    def strip(d: dict) -> dict:
        return {k: v for k, v in d.items() if not k.startswith("_")}

    run_facets = {}
    for name, facet in doc["run"].get("facets", {}).items():
        if name == "parent":
            root = facet.get("root")
            run_facets[name] = parent_run.ParentRunFacet(
                run=parent_run.Run(runId=facet["run"]["runId"]),
                job=parent_run.Job(namespace=facet["job"]["namespace"], name=facet["job"]["name"]),
                root=parent_run.Root(run=parent_run.RootRun(runId=root["run"]["runId"]),
                                     job=parent_run.RootJob(namespace=root["job"]["namespace"],
                                                            name=root["job"]["name"])) if root else None,
                producer=facet["_producer"])
        elif name == "errorMessage":
            run_facets[name] = error_message_run.ErrorMessageRunFacet(**strip(facet), producer=facet["_producer"])
        elif name == "flowcept":
            run_facets[name] = FlowceptRunFacet(**strip(facet), producer=facet["_producer"])
        else:
            raise AssertionError(f"unexpected run facet {name}")
    job_facets = {"jobType": job_type_job.JobTypeJobFacet(**strip(doc["job"]["facets"]["jobType"]),
                                                          producer=doc["job"]["facets"]["jobType"]["_producer"])}
    event = RunEvent(eventType=RunState(doc["eventType"]), eventTime=doc["eventTime"], producer=doc["producer"],
                     run=Run(runId=doc["run"]["runId"], facets=run_facets),
                     job=Job(namespace=doc["job"]["namespace"], name=doc["job"]["name"], facets=job_facets),
                     inputs=[InputDataset(namespace=d["namespace"], name=d["name"]) for d in doc.get("inputs", [])],
                     outputs=[OutputDataset(namespace=d["namespace"], name=d["name"])
                              for d in doc.get("outputs", [])])
    assert json.loads(Serde.to_json(event)) == doc
    return event


class _Collector(http.server.BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((self.path, json.loads(body)))
        self.send_response(201)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture(name="lineage_server")
def fixture_lineage_server():
    """A real HTTP server on a free port that records every POSTed body."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    handler = type("Handler", (_Collector,), {"received": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}", handler.received
    server.shutdown()
    server.server_close()


class TestOpenLineage:
    def test_events_parse_and_are_exact(self, known, store, tmp_path):
        """START/COMPLETE/FAIL per task and workflow, all parsing with the client's classes, with exact facets."""
        wf, _ = known
        path = tmp_path / "events.jsonl"
        result = export_workflow(wf, "openlineage", str(path), store=store)
        docs = [json.loads(line) for line in path.read_text().splitlines()]
        finished = sum(1 for t in TASKS if t[4] in ("FINISHED", "ERROR"))
        assert result["events"] == len(docs) == 2 + len(TASKS) + finished
        events = [parse_event(d) for d in docs]
        assert all(uuid.UUID(e.run.runId) for e in events)
        assert docs[0]["eventType"] == "START" and docs[0]["job"]["name"] == "card_wf"
        assert docs[-1]["eventType"] == "COMPLETE" and docs[-1]["run"]["runId"] == run_uuid("workflow", wf)
        by_task = {}
        for d in docs[1:-1]:
            by_task.setdefault(d["run"]["facets"]["flowcept"]["task_id"], []).append(d)
        assert [d["eventType"] for d in by_task[tid(wf, "train3")]] == ["START", "FAIL"]
        assert [d["eventType"] for d in by_task[tid(wf, "eval1")]] == ["START"]
        fail = by_task[tid(wf, "train3")][1]
        assert fail["run"]["facets"]["errorMessage"]["message"] == "ValueError: diverged"
        assert fail["eventTime"] == "2023-11-14T22:13:27.500000+00:00"  # BASE + 5.0 + 2.5
        step = by_task[tid(wf, "step1")][0]
        assert step["run"]["runId"] == run_uuid("task", tid(wf, "step1"))
        assert step["run"]["facets"]["parent"]["run"]["runId"] == run_uuid("task", tid(wf, "train1"))
        assert step["run"]["facets"]["parent"]["job"]["name"] == "card_wf.train"
        assert step["run"]["facets"]["parent"]["root"]["run"]["runId"] == run_uuid("workflow", wf)
        load1_end = by_task[tid(wf, "load1")][1]
        assert load1_end["run"]["facets"]["flowcept"]["hostname"] == "node1"
        assert load1_end["run"]["facets"]["flowcept"]["telemetry"]["cpu"] == {"user_time_diff": 0.5,
                                                                             "system_time_diff": 0.25}
        # data joins: what load1 generated is an input dataset of train1
        train1_start = by_task[tid(wf, "train1")][0]
        assert load1_end["outputs"][0]["name"] in {i["name"] for i in train1_start["inputs"]}

    def test_run_ids_stable(self, known, store, tmp_path):
        """Two exports of one workflow give identical files."""
        wf, _ = known
        a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
        export_workflow(wf, "openlineage", str(a), store=store)
        export_workflow(wf, "openlineage", str(b), store=store)
        assert a.read_text() == b.read_text()

    def test_post_to_http_endpoint(self, known, store, tmp_path, lineage_server):
        """Every event is POSTed to /api/v1/lineage of a real server, the same JSON as in the file."""
        wf, _ = known
        url, received = lineage_server
        path = tmp_path / "events.jsonl"
        export_workflow(wf, "openlineage", str(path), store=store, url=url)
        lines = [json.loads(line) for line in path.read_text().splitlines()]
        assert [p for p, _ in received] == ["/api/v1/lineage"] * len(lines)
        assert [body for _, body in received] == lines

    def test_refused_endpoint_is_transport_error(self, tmp_path):
        """An endpoint that does not answer is a TransportError naming it (after the client's retries)."""
        from flowcept.errors import TransportError
        from flowcept.store.sqlite import SqliteStore

        wf, records = make_records()
        with SqliteStore(tmp_path / "ol.sqlite") as store:
            store.upsert(records)
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
            with pytest.raises(TransportError, match=f"127.0.0.1:{port}"):
                export_workflow(wf, "openlineage", None, store=store, url=f"http://127.0.0.1:{port}")


class TestTimesWithoutRecord:
    """A workflow stored without its workflow record, and tasks without times: events carry the nearest known
    time (never 1970), and the workflow ends as its tasks did."""

    @staticmethod
    def _iso(offset: float) -> str:
        import datetime

        return datetime.datetime.fromtimestamp(BASE + offset, tz=datetime.timezone.utc).isoformat()

    def _events(self, store, tmp_path, tasks: list[dict]) -> list[tuple[str, str, str]]:
        store.upsert([{"type": "task", "workflow_id": "wf-norec", **t} for t in tasks])
        path = tmp_path / "events.jsonl"
        export_workflow("wf-norec", "openlineage", str(path), store=store)
        docs = [json.loads(line) for line in path.read_text().splitlines()]
        assert all(parse_event(d) for d in docs)
        return [(d["eventType"], d["run"]["facets"]["flowcept"].get("task_id") or "wf", d["eventTime"]) for d in docs]

    def test_workflow_spans_its_tasks_and_fails_with_one(self, store, tmp_path):
        """START at the earliest task time, FAIL (a task failed) at the latest; a task without started_at starts
        at its utc_timestamp, one without any time at the workflow's start, one without ended_at ends at its
        start."""
        events = self._events(store, tmp_path, [
            {"task_id": "nr-a", "started_at": BASE + 10, "ended_at": BASE + 20, "status": "FINISHED"},
            {"task_id": "nr-b", "utc_timestamp": BASE + 30, "ended_at": BASE + 40, "status": "ERROR"},
            {"task_id": "nr-c", "status": "FINISHED"},
            {"task_id": "nr-d", "started_at": BASE + 15, "status": "FINISHED"},
        ])
        assert events[0] == ("START", "wf", self._iso(10))
        assert events[-1] == ("FAIL", "wf", self._iso(40))
        assert sorted(events[1:-1], key=lambda e: (e[1], e[0] != "START")) == [
            ("START", "nr-a", self._iso(10)), ("COMPLETE", "nr-a", self._iso(20)),
            ("START", "nr-b", self._iso(30)), ("FAIL", "nr-b", self._iso(40)),
            ("START", "nr-c", self._iso(10)), ("COMPLETE", "nr-c", self._iso(10)),
            ("START", "nr-d", self._iso(15)), ("COMPLETE", "nr-d", self._iso(15))]

    def test_complete_once_every_task_ended(self, store, tmp_path):
        """Every task finished: COMPLETE at the latest task time; one still running: no end event yet."""
        finished = [{"task_id": "nr-a", "started_at": BASE + 10, "ended_at": BASE + 20, "status": "FINISHED"},
                    {"task_id": "nr-b", "started_at": BASE + 5, "ended_at": BASE + 12, "status": "FINISHED"}]
        events = self._events(store, tmp_path, finished)
        assert (events[0], events[-1]) == (("START", "wf", self._iso(5)), ("COMPLETE", "wf", self._iso(20)))
        events = self._events(store, tmp_path, [{"task_id": "nr-r", "started_at": BASE + 30, "status": "RUNNING"}])
        assert events[0] == ("START", "wf", self._iso(5))
        assert [e for e in events if e[1] == "wf"] == [("START", "wf", self._iso(5))]
