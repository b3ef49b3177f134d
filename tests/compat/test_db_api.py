"""The reference's ``Flowcept.db`` (reference-facts 3.4) on both stores: every documented function is there, the
ones no other test calls are called here, and ``resolve_chart_data`` keeps its documented contract."""

from __future__ import annotations

import hashlib
import json

import pytest

from flowcept.errors import QueryError
from tests.objects.conftest import fixture_db, fixture_kind, fixture_settings_text  # noqa: F401 - fixtures

pytestmark = pytest.mark.timeout(120)

# reference-facts 3.4, in its order.
DB_API = [
    "ASCENDING", "DESCENDING", "query", "task_query", "workflow_query", "agent_query", "blob_object_query",
    "ml_model_query", "dataset_query", "get_workflow_object", "get_agent_object", "get_tasks_from_current_workflow",
    "insert_or_update_task", "insert_or_update_workflow", "insert_or_update_agent", "delete_agents_with_filter",
    "get_blob_object", "get_ml_model", "get_dataset", "get_object_history", "list_object_versions",
    "get_blob_fingerprint", "blob_objects_equal", "update_object_metadata", "load_torch_model", "delete_object_keys",
    "get_tasks_recursive", "dump_tasks_to_file_recursive", "dump_to_file", "to_df", "delete_workflow_data",
    "delete_campaign_data", "save_node_positions", "get_node_positions", "task_summary", "derive_campaigns",
    "derive_agents", "telemetry_timeseries", "resolve_chart_data", "save_workflow_domain_data_schema",
    "get_workflow_domain_data_schema", "liveness_test", "db_liveness_tests", "close",
]

TASKS = [
    {"type": "task", "task_id": "t1", "workflow_id": "w1", "activity_id": "train", "started_at": 3.0,
     "telemetry_at_end": {"cpu": {"percent_all": 50.0}, "memory": {"used": 10}}},
    {"type": "task", "task_id": "t2", "workflow_id": "w1", "activity_id": "train", "started_at": 1.0,
     "telemetry_at_end": {"cpu": {"percent_all": 75.5}}},
    {"type": "task", "task_id": "t3", "workflow_id": "w1", "activity_id": "eval"},  # no x: left out
    {"type": "task", "task_id": "t4", "workflow_id": "w2", "activity_id": "train", "started_at": 2.0,
     "telemetry_at_end": {"cpu": {"percent_all": 12.0}}},
]


def test_every_documented_function_is_on_flowcept_db():
    """Flowcept.db has every name reference-facts 3.4 lists."""
    from flowcept import Flowcept
    from flowcept.flowcept_api.db_api import DBAPI

    assert [name for name in DB_API if not hasattr(DBAPI, name)] == []
    assert isinstance(Flowcept.db, DBAPI)


def test_functions_no_other_test_calls(db):
    """get_ml_model, get_dataset, get_tasks_recursive and db_liveness_tests answer as documented."""
    db.insert_or_update_ml_model(b"weights", object_id="m")
    db.insert_or_update_dataset(b"rows", object_id="d")
    assert (db.get_ml_model("m").data, db.get_ml_model("m").object_type) == (b"weights", "ml_model")
    assert (db.get_dataset("d").data, db.get_dataset("d").object_type) == (b"rows", "dataset")
    db.store.upsert([{"type": "task", "task_id": "root", "workflow_id": "w", "activity_id": "main"},
                     {"type": "task", "task_id": "kid", "workflow_id": "w", "activity_id": "step",
                      "parent_task_id": "root"}])
    out = db.get_tasks_recursive("w", mapping={"act": "activity_id"})
    assert out == [{"task_id": "root", "act": "main", "depth": 0, "ancestor_ids": []},
                   {"task_id": "kid", "act": "step", "depth": 1, "ancestor_ids": [{"main": "root"}]}]
    assert type(db).db_liveness_tests() is True


def test_delete_object_keys_and_resolve_chart_data_in_reference_style(db):
    """The two calls as reference code makes them: delete models by task id, chart a telemetry field."""
    db.insert_or_update_ml_model(b"a", object_id="m1", task_id="t1")
    db.insert_or_update_ml_model(b"b", object_id="m2", task_id="t2")
    assert db.delete_object_keys("task_id", ["t1"]) == 1
    assert [m["object_id"] for m in db.ml_model_query({})] == ["m2"]
    db.store.upsert([dict(t) for t in TASKS])
    chart = db.resolve_chart_data({"collection": "tasks", "y": ["telemetry_at_end.cpu.percent_all"]},
                                  context={"workflow_id": "w1"})
    assert chart == {"x_field": "started_at", "x": [1.0, 3.0],
                     "series": {"telemetry_at_end.cpu.percent_all": [75.5, 50.0]}}


class TestChartSpec:
    @pytest.fixture(name="tasks_db")
    def fixture_tasks_db(self, db):
        db.store.upsert([dict(t) for t in TASKS])
        return db

    def test_query_orders_by_x_skips_rows_without_x_and_fills_missing_y(self, tasks_db):
        """Points come ordered by x; a task without x is left out; a missing y is None; names come from y."""
        spec = {"collection": "tasks", "filter": {"activity_id": {"$in": ["train", "eval"]}}, "x": "started_at",
                "y": {"cpu": "telemetry_at_end.cpu.percent_all", "mem": "telemetry_at_end.memory.used"}}
        assert tasks_db.resolve_chart_data(spec) == {
            "x_field": "started_at", "x": [1.0, 2.0, 3.0],
            "series": {"cpu": [75.5, 12.0, 50.0], "mem": [None, None, 10]}}
        assert tasks_db.resolve_chart_data({**spec, "limit": 2})["x"] == [1.0, 2.0]

    def test_context_narrows_the_filter(self, tasks_db):
        """Context fields are ANDed with the spec's filter: a chart scoped to w2 never shows w1's tasks."""
        spec = {"collection": "tasks", "y": "task_id"}
        assert tasks_db.resolve_chart_data(spec, {"workflow_id": "w2"}) == {
            "x_field": "started_at", "x": [2.0], "series": {"task_id": ["t4"]}}
        narrowed = tasks_db.resolve_chart_data({**spec, "filter": {"workflow_id": "w1"}}, {"workflow_id": "w2"})
        assert narrowed == {"x_field": "started_at", "x": [], "series": {"task_id": []}}

    def test_other_collections(self, tasks_db):
        """Workflows chart by any field; objects default to created_at along x."""
        tasks_db.store.upsert([{"type": "workflow", "workflow_id": "wa", "started_at": 5.0, "name": "a"},
                               {"type": "workflow", "workflow_id": "wb", "started_at": 4.0, "name": "b"}])
        assert tasks_db.resolve_chart_data({"collection": "workflows", "y": "name"}) == {
            "x_field": "started_at", "x": [4.0, 5.0], "series": {"name": ["b", "a"]}}
        tasks_db.insert_or_update_object(b"12345", object_id="o1")
        tasks_db.insert_or_update_object(b"123", object_id="o2")
        created = [tasks_db.get_blob_object(o).created_at for o in ("o1", "o2")]
        chart = tasks_db.resolve_chart_data({"collection": "objects", "y": {"bytes": "object_size_bytes"}})
        assert chart == {"x_field": "created_at", "x": sorted(created),
                         "series": {"bytes": [5, 3] if created[0] <= created[1] else [3, 5]}}

    def test_result_is_plain_json(self, tasks_db):
        """The result survives a JSON round trip unchanged."""
        chart = tasks_db.resolve_chart_data({"collection": "tasks", "y": ["telemetry_at_end.cpu.percent_all"]})
        assert json.loads(json.dumps(chart)) == chart

    @pytest.mark.parametrize("spec, message", [
        ({"collection": "users", "y": "a"}, "chart spec: unknown collection 'users'; collections: tasks, workflows, "
                                            "agents, objects, object_history"),
        ({"collection": "tasks"}, "chart spec: 'y' is required: the fields to plot"),
        ({"collection": "tasks", "y": []}, "chart spec: 'y' names no field"),
        ({"collection": "tasks", "y": "a", "fields": ["b"]}, "chart spec: unknown key 'fields'; allowed keys: "
                                                             "collection, filter, x, y, limit"),
        ({"collection": "tasks", "y": "a", "limit": 0}, r"chart spec: 'limit' must be 1 to 100000 points, got 0"),
        ({"collection": "tasks", "y": "a", "limit": 10 ** 9}, r"'limit' must be 1 to 100000 points, got 1000000000"),
        ({"collection": "tasks", "y": "a", "limit": 2 ** 70}, r"limit must be at most"),
        ({"collection": "tasks", "y": "a", "limit": "10"}, r"limit must be a non-negative int, got '10'"),
        ({"collection": "tasks", "y": "a", "filter": {"$where": "1"}}, r"unknown query operator '\$where'"),
        ({"collection": "tasks", "y": "a", "filter": "workflow_id = 1"}, r"'filter' must be a dict"),
        ({"collection": "tasks", "y": 'a"b'}, r"invalid field path 'a\"b'"),
        ({"collection": "tasks", "y": [f"f{i}" for i in range(101)]}, r"names 101 fields; at most 100 series"),
        ({"collection": "tasks", "x": "", "y": "a"}, r"field path must be a non-empty string"),
    ])
    def test_hostile_specs_are_refused(self, tasks_db, spec, message):
        """A malformed spec is a QueryError (a ValueError) naming the key and what to give instead."""
        with pytest.raises(QueryError, match=message):
            tasks_db.resolve_chart_data(spec)

    def test_hostile_context_is_refused(self, tasks_db):
        """A context that is no dict, or holds an unknown operator, is refused like a filter."""
        spec = {"collection": "tasks", "y": "task_id"}
        with pytest.raises(QueryError, match="context must be a dict of fields the records must match"):
            tasks_db.resolve_chart_data(spec, ["w1"])
        with pytest.raises(QueryError, match=r"unknown query operator '\$function'"):
            tasks_db.resolve_chart_data(spec, {"workflow_id": {"$function": "x"}})


class TestLiteralChartData:
    def test_rows_become_columns(self, db):
        """Rows are normalized to columns in first-seen key order; a missing value is None."""
        rows = [{"epoch": 1, "loss": 0.9}, {"epoch": 2, "loss": 0.5, "acc": 0.7}]
        assert db.resolve_chart_data(rows) == {"x_field": None, "x": [0, 1],
                                               "series": {"epoch": [1, 2], "loss": [0.9, 0.5], "acc": [None, 0.7]}}
        assert db.resolve_chart_data({"rows": rows, "x": "epoch", "y": ["acc"]}) == {
            "x_field": "epoch", "x": [1, 2], "series": {"acc": [None, 0.7]}}

    def test_columns_with_x_skip_points_without_x(self, db):
        """Columns keep their order; points whose x is None or NaN are left out; NaN values become None."""
        np = pytest.importorskip("numpy")
        cols = {"step": [0, None, 2, float("nan")], "loss": np.array([1.0, 0.8, float("nan"), 0.1])}
        assert db.resolve_chart_data({"columns": cols, "x": "step"}) == {
            "x_field": "step", "x": [0, 2], "series": {"loss": [1.0, None]}}
        assert db.resolve_chart_data({"a": (1, 2)}, context={"workflow_id": "ignored"}) == {
            "x_field": None, "x": [0, 1], "series": {"a": [1, 2]}}

    @pytest.mark.parametrize("data, message", [
        (42, "chart data must be a list of rows, a dict of columns, or a spec dict with 'collection'"),
        ([{"a": 1}, 2], "chart data: row 1 is a int; every row must be a dict"),
        ({"a": [1, 2], "b": [1]}, r"chart data: columns differ in length \(\{'a': 2, 'b': 1\}\)"),
        ({"a": 1}, "a dict without 'collection' must map column names to lists of values"),
        ({"rows": [], "columns": {}}, "give either 'rows' or 'columns', not both"),
        ({"rows": [{"a": 1}], "x": "b"}, r"chart data: x column 'b' is not in the data \(columns: a\)"),
        ({"rows": [{"a": 1}], "y": ["c"]}, r"chart data: y column 'c' is not in the data \(columns: a\)"),
        ({"rows": [{"a": 1}], "filter": {}}, "literal chart data: unknown key 'filter'"),
    ])
    def test_malformed_data_is_refused(self, db, data, message):
        """Malformed literal data is a QueryError saying what to give."""
        with pytest.raises(QueryError, match=message):
            db.resolve_chart_data(data)


def test_chart_of_deleted_objects_is_empty(db):
    """After delete_object_keys the objects chart no longer has the deleted objects."""
    db.insert_or_update_object(b"x", object_id="gone")
    sha = hashlib.sha256(b"x").hexdigest()
    assert db.delete_object_keys("data_sha256", [sha]) == 1
    assert db.resolve_chart_data({"collection": "objects", "y": "object_size_bytes"}) == {
        "x_field": "created_at", "x": [], "series": {"object_size_bytes": []}}
