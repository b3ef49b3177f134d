"""DBAPI (``Flowcept.db``) over an injected SQLite store."""

from __future__ import annotations

import pytest

from flowcept.errors import ConfigError
from flowcept.query.api import ASCENDING, DBAPI, DESCENDING
from flowcept.store.sqlite import SqliteStore

from ._cases import TASKS


@pytest.fixture(name="db")
def fixture_db(tmp_path):
    store = SqliteStore(tmp_path / "db.sqlite")
    store.upsert([dict(t) for t in TASKS])
    db = DBAPI(store)
    yield db
    db.close()
    store.close()


class TestDBAPI:
    def test_task_query(self, db):
        """task_query filters, sorts, limits and projects tasks."""
        assert ASCENDING == 1 and DESCENDING == -1
        docs = db.task_query({"workflow_id": {"$in": ["w1", "w2"]}}, projection=["task_id"], limit=3,
                             sort=[("started_at", DESCENDING)])
        assert docs == [{"task_id": "t4"}, {"task_id": "t3"}, {"task_id": "t2"}]

    def test_query_aggregation_groups_by_single_projection(self, db):
        """An aggregation with one projected field groups by it."""
        out = db.query(projection=["workflow_id"], aggregation=[("max", "started_at")])
        assert out == [{"workflow_id": "w1", "max_started_at": 2.0}, {"workflow_id": "w2", "max_started_at": 4.0},
                       {"workflow_id": "w3", "max_started_at": None}]

    def test_insert_or_update_and_objects(self, db):
        """insert_or_update_* accept dicts or to_dict objects and merge by id."""

        class Task:
            def to_dict(self):
                return {"task_id": "t1", "status": "RUNNING", "used": {"y": 9}}

        assert db.insert_or_update_task(Task())
        (doc,) = db.task_query({"task_id": "t1"})
        assert doc["status"] == "FINISHED" and doc["used"] == {"x": 1, "lr": 0.1, "name": "alpha", "y": 9}
        wf = {"name": "my wf"}
        assert db.insert_or_update_workflow(wf)
        assert wf["workflow_id"] and db.workflow_query({"workflow_id": wf["workflow_id"]}) == [
            {"name": "my wf", "type": "workflow", "workflow_id": wf["workflow_id"]}]
        assert db.insert_or_update_agent({"agent_id": "ag", "workflow_id": "w1"})
        assert db.agent_query({"agent_id": "ag"}) == [{"agent_id": "ag", "workflow_id": "w1", "type": "agent"}]
        assert db.get_workflow_object("missing") is None and db.get_agent_object("missing") is None

    def test_count_delete_and_df(self, db):
        """count, to_df (dotted columns) and delete_workflow_data per collection."""
        assert db.count() == 5 and db.count("tasks", {"status": "FINISHED"}) == 3
        pytest.importorskip("pandas")
        df = db.to_df(filter={"workflow_id": "w1"})
        assert set(df["task_id"]) == {"t1", "t2"} and "used.x" in df.columns and "generated.loss" in df.columns
        db.insert_or_update_workflow({"workflow_id": "w1"})
        assert db.delete_workflow_data("w1") == {"objects": 0, "tasks": 2, "agents": 0, "workflows": 1}
        assert db.count() == 3

    def test_times_stay_floats(self, db):
        """Stored time fields come back as floats."""
        (doc,) = db.task_query({"task_id": "t1"})
        assert isinstance(doc["started_at"], float) and isinstance(doc["ended_at"], float)

    def test_no_store_configured(self, tmp_path, monkeypatch):
        """Without an enabled store, the first query raises ConfigError saying how to enable one."""
        from tests.conftest import write_settings

        write_settings(tmp_path, "databases:\n  sqlite:\n    enabled: false\n", monkeypatch)
        with pytest.raises(ConfigError, match="databases.sqlite.enabled"):
            DBAPI().count()

    def test_offline_mode_still_reads(self, tmp_path, monkeypatch):
        """In offline mode runs do not write the store, but queries still read what earlier runs stored."""
        from flowcept import Flowcept
        from tests.conftest import write_settings

        with Flowcept(workflow_id="wf-online"):
            pass
        write_settings(tmp_path, "project:\n  db_flush_mode: offline\n", monkeypatch)
        assert DBAPI().workflow_query({"workflow_id": "wf-online"})[0]["status"] == "FINISHED"
