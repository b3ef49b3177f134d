"""Analytics and dumps on every store: exact counts, durations, time series, campaigns, agents, deletes, files."""

from __future__ import annotations

import json
import zipfile

import pytest

from flowcept.errors import QueryError
from flowcept.query.api import DBAPI


@pytest.fixture(name="db")
def fixture_db(store):
    store.upsert([
        {"type": "workflow", "workflow_id": "w1", "campaign_id": "c1", "name": "one", "started_at": 10.0,
         "ended_at": 20.0},
        {"type": "workflow", "workflow_id": "w2", "campaign_id": "c1", "name": "two", "started_at": 5.0,
         "ended_at": 30.0},
        {"type": "workflow", "workflow_id": "w3", "campaign_id": "c2", "started_at": 1.0},
        {"type": "agent", "agent_id": "ag1", "name": "planner", "workflow_id": "w1"},
        {"type": "agent", "agent_id": "ag-idle", "name": "idle"},
        {"type": "task", "task_id": "t1", "workflow_id": "w1", "activity_id": "train", "status": "FINISHED",
         "started_at": 10.0, "ended_at": 12.5, "agent_id": "ag1", "telemetry_at_end": {"cpu": {"percent_all": 50.0}}},
        {"type": "task", "task_id": "t2", "workflow_id": "w1", "activity_id": "train", "status": "ERROR",
         "started_at": 11.0, "ended_at": 11.25, "agent_id": "ag1", "telemetry_at_end": {"cpu": {"percent_all": 75.5}}},
        {"type": "task", "task_id": "t3", "workflow_id": "w2", "activity_id": "eval", "status": "FINISHED",
         "started_at": 13.0, "ended_at": 17.0, "agent_id": "ag2"},
        {"type": "task", "task_id": "t4", "workflow_id": "w2", "activity_id": "eval", "status": "RUNNING",
         "started_at": 14.0},
        {"type": "task", "task_id": "t5", "workflow_id": "w3", "status": "FINISHED", "started_at": 2.0,
         "ended_at": 3.0, "agent_id": "ag3"},
    ])
    return DBAPI(store)


def test_task_summary(db):
    """Counts, status counts and durations come out exact, overall and per activity."""
    out = db.task_summary({"workflow_id": {"$in": ["w1", "w2"]}})
    assert out == {
        "n_tasks": 4, "status_counts": {"ERROR": 1, "FINISHED": 2, "RUNNING": 1}, "started_at": 10.0,
        "ended_at": 17.0, "duration": {"count": 3, "total": 6.75, "min": 0.25, "max": 4.0, "avg": 2.25},
        "activities": [
            {"activity_id": "eval", "n_tasks": 2, "status_counts": {"FINISHED": 1, "RUNNING": 1}, "started_at": 13.0,
             "ended_at": 17.0, "duration": {"count": 1, "total": 4.0, "min": 4.0, "max": 4.0, "avg": 4.0}},
            {"activity_id": "train", "n_tasks": 2, "status_counts": {"ERROR": 1, "FINISHED": 1},
             "started_at": 10.0, "ended_at": 12.5,
             "duration": {"count": 2, "total": 2.75, "min": 0.25, "max": 2.5, "avg": 1.375}}]}
    assert db.task_summary(None)["activities"][0]["activity_id"] is None
    assert db.task_summary({"workflow_id": "nope"}) == {
        "n_tasks": 0, "status_counts": {}, "started_at": None, "ended_at": None,
        "duration": {"count": 0, "total": None, "min": None, "max": None, "avg": None}, "activities": []}


def test_telemetry_timeseries(db):
    """Points ordered by x, missing fields as None, limit applied, tasks without x left out."""
    out = db.telemetry_timeseries({"workflow_id": "w1"}, ["telemetry_at_end.cpu.percent_all", "nope"])
    assert out == [{"task_id": "t1", "started_at": 10.0, "telemetry_at_end.cpu.percent_all": 50.0, "nope": None},
                   {"task_id": "t2", "started_at": 11.0, "telemetry_at_end.cpu.percent_all": 75.5, "nope": None}]
    assert db.telemetry_timeseries(None, ["ended_at"], x_field="ended_at", limit=2) == [
        {"task_id": "t5", "ended_at": 3.0}, {"task_id": "t2", "ended_at": 11.25}]
    with pytest.raises(QueryError):
        db.telemetry_timeseries(None, [])


def test_derive_campaigns(db):
    """Campaigns group workflows by start, count their tasks and span their times; unknown id: []."""
    assert db.derive_campaigns() == [
        {"campaign_id": "c1", "workflow_ids": ["w2", "w1"], "n_workflows": 2, "n_tasks": 4,
         "status_counts": {"ERROR": 1, "FINISHED": 2, "RUNNING": 1}, "started_at": 5.0, "ended_at": 30.0},
        {"campaign_id": "c2", "workflow_ids": ["w3"], "n_workflows": 1, "n_tasks": 1,
         "status_counts": {"FINISHED": 1}, "started_at": 1.0, "ended_at": None}]
    assert [c["campaign_id"] for c in db.derive_campaigns("c2")] == ["c2"]
    assert db.derive_campaigns("unknown") == []


def test_derive_agents(db):
    """Agents from tasks with their records' names; idle agent records listed without a filter."""
    assert db.derive_agents() == [
        {"agent_id": "ag-idle", "name": "idle", "n_tasks": 0, "status_counts": {}, "workflow_ids": [],
         "started_at": None, "ended_at": None},
        {"agent_id": "ag1", "name": "planner", "n_tasks": 2, "status_counts": {"ERROR": 1, "FINISHED": 1},
         "workflow_ids": ["w1"], "started_at": 10.0, "ended_at": 12.5},
        {"agent_id": "ag2", "name": None, "n_tasks": 1, "status_counts": {"FINISHED": 1}, "workflow_ids": ["w2"],
         "started_at": 13.0, "ended_at": 17.0},
        {"agent_id": "ag3", "name": None, "n_tasks": 1, "status_counts": {"FINISHED": 1}, "workflow_ids": ["w3"],
         "started_at": 2.0, "ended_at": 3.0}]
    assert [a["agent_id"] for a in db.derive_agents({"workflow_id": "w2"})] == ["ag2"]


def test_delete_campaign_data(db):
    """A campaign's workflows, tasks and agents go; other campaigns stay; unknown campaign deletes nothing."""
    assert db.delete_campaign_data("unknown") == {"objects": 0, "tasks": 0, "agents": 0, "workflows": 0}
    assert db.delete_campaign_data("c1") == {"objects": 0, "tasks": 4, "agents": 1, "workflows": 2}
    assert [t["task_id"] for t in db.task_query({})] == ["t5"]
    assert sorted(a["agent_id"] for a in db.agent_query({})) == ["ag-idle"]
    assert [w["workflow_id"] for w in db.workflow_query({})] == ["w3"]


def test_delete_workflow_data(db):
    """A workflow's tasks, its agents and the agents only its tasks named go; an agent a remaining task names stays."""
    assert db.delete_workflow_data("unknown") == {"objects": 0, "tasks": 0, "agents": 0, "workflows": 0}
    # w2's only agent reference is ag2 (no agent record): nothing to delete among agents.
    assert db.delete_workflow_data("w2") == {"objects": 0, "tasks": 2, "agents": 0, "workflows": 1}
    # w1: ag1 is its agent record (workflow_id w1) and named only by w1's tasks.
    assert db.delete_workflow_data("w1") == {"objects": 0, "tasks": 2, "agents": 1, "workflows": 1}
    assert sorted(t["task_id"] for t in db.task_query({})) == ["t5"]
    assert sorted(a["agent_id"] for a in db.agent_query({})) == ["ag-idle"]
    with pytest.raises(QueryError, match="workflow_id must be a non-empty string"):
        db.delete_workflow_data("")


def test_delete_workflow_data_keeps_an_agent_other_tasks_name(db):
    """An agent named by the deleted workflow's tasks and by another workflow's task is kept."""
    db.store.upsert([{"type": "agent", "agent_id": "ag3", "name": "shared"},
                     {"type": "task", "task_id": "t6", "workflow_id": "w2", "agent_id": "ag3", "started_at": 5.0}])
    assert db.delete_workflow_data("w2") == {"objects": 0, "tasks": 3, "agents": 0, "workflows": 1}
    assert sorted(a["agent_id"] for a in db.agent_query({})) == ["ag-idle", "ag1", "ag3"]
    assert db.delete_workflow_data("w3") == {"objects": 0, "tasks": 1, "agents": 1, "workflows": 1}
    assert sorted(a["agent_id"] for a in db.agent_query({})) == ["ag-idle", "ag1"]


class TestDumps:
    def test_json_csv_parquet(self, db, tmp_path):
        """Each format holds exactly the matching records, nested fields as dotted columns."""
        flt = {"workflow_id": "w1"}
        path = db.dump_to_file("tasks", flt, str(tmp_path / "t.json"))
        assert sorted(json.load(open(path)), key=lambda d: d["task_id"]) == db.task_query(flt, sort=[("task_id", 1)])
        import csv

        path = db.dump_to_file("tasks", flt, str(tmp_path / "t.csv"), export_format="csv")
        rows = sorted(csv.DictReader(open(path)), key=lambda r: r["task_id"])
        assert [(r["task_id"], r["ended_at"], r["telemetry_at_end.cpu.percent_all"]) for r in rows] == [
            ("t1", "12.5", "50.0"), ("t2", "11.25", "75.5")]
        pq = pytest.importorskip("pyarrow.parquet")
        path = db.dump_to_file("tasks", {"workflow_id": {"$in": ["w1", "w2"]}}, str(tmp_path / "t.parquet"),
                               export_format="parquet")
        table = pq.read_table(path).to_pydict()
        got = sorted(zip(table["task_id"], table["ended_at"], table["agent_id"]))
        assert got == [("t1", 12.5, "ag1"), ("t2", 11.25, "ag1"), ("t3", 17.0, "ag2"), ("t4", None, None)]

    def test_full_dump_needs_zip(self, db, tmp_path, monkeypatch):
        """Without a filter the dump must be zipped; the zip holds every record."""
        with pytest.raises(QueryError, match="should_zip"):
            db.dump_to_file("workflows")
        monkeypatch.chdir(tmp_path)
        path = db.dump_to_file("workflows", should_zip=True)
        assert path.startswith("docs_dump_workflows_") and path.endswith(".zip")
        with zipfile.ZipFile(path) as z:
            (name,) = z.namelist()
            assert name.endswith(".json")
            assert sorted(d["workflow_id"] for d in json.loads(z.read(name))) == ["w1", "w2", "w3"]

    def test_bad_format(self, db, tmp_path):
        """An unknown format is a QueryError listing the formats."""
        with pytest.raises(QueryError, match="parquet"):
            db.dump_to_file("tasks", {"task_id": "t1"}, str(tmp_path / "x"), export_format="xml")

    def test_recursive_dump(self, db, tmp_path):
        """dump_tasks_to_file_recursive writes the parent forest with depth and ancestor columns."""
        db.store.upsert([{"type": "task", "task_id": "k", "workflow_id": "w1", "parent_task_id": "t1",
                          "activity_id": "child"}])
        assert db.dump_tasks_to_file_recursive("w1", str(tmp_path / "r.json"), mapping={"act": "activity_id"}) == 3
        out = json.load(open(tmp_path / "r.json"))
        assert out[-1] == {"task_id": "k", "act": "child", "depth": 1, "ancestor_ids": [{"train": "t1"}]}
        pytest.importorskip("pyarrow")
        assert db.dump_tasks_to_file_recursive("w1", str(tmp_path / "r.parquet")) == 3
