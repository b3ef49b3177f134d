"""Query behaviours both stores must give alike: aggregation sort and limit, MongoDB's ``_id: 0`` projection, and
``$regex`` read as Python (MongoDB's PCRE) reads it."""

from __future__ import annotations

import pytest

from flowcept.errors import QueryError
from flowcept.query.api import DBAPI

from ._cases import TASKS


@pytest.fixture(name="seeded")
def fixture_seeded(store):
    assert store.upsert([dict(t) for t in TASKS]) == len(TASKS)
    return store


@pytest.fixture(name="db")
def fixture_db(seeded):
    return DBAPI(seeded)


class TestAggregationSortLimit:
    def test_sort_by_aggregate_and_limit(self, db):
        """sort by an aggregate name orders the groups, ties keep group order, and limit keeps the first groups."""
        out = db.task_query(None, projection=["activity_id"], aggregation=[("sum", "used.x")],
                            sort=[("sum_used_x", -1)], limit=2)
        assert out == [{"activity_id": "eval", "sum_used_x": 3}, {"activity_id": "train", "sum_used_x": 3}]

    def test_sort_by_several_keys(self, db):
        """Later sort keys break the ties of earlier ones, each in its own direction."""
        out = db.task_query(None, projection=["activity_id"], aggregation=[("sum", "used.x")],
                            sort=[("sum_used_x", -1), ("activity_id", -1)])
        assert out == [{"activity_id": "train", "sum_used_x": 3}, {"activity_id": "eval", "sum_used_x": 3},
                       {"activity_id": "'; DROP TABLE tasks; --", "sum_used_x": 0}]

    def test_sort_by_dotted_group_key(self, db):
        """A dotted group field sorts by its output key; null sorts last descending."""
        out = db.task_query(None, projection=["used.name"], aggregation=[("count", "*")], sort=[("used.name", -1)])
        assert out == [{"used.name": "alpha", "count": 1}, {"used.name": "Beta", "count": 1},
                       {"used.name": None, "count": 3}]

    def test_limit_without_sort(self, db):
        """limit alone keeps the first groups in group order."""
        out = db.task_query(None, projection=["workflow_id"], aggregation=[("max", "started_at")], limit=1)
        assert out == [{"workflow_id": "w1", "max_started_at": 2.0}]

    def test_bad_sort_or_limit(self, db):
        """A bad sort direction or limit on an aggregation raises QueryError."""
        with pytest.raises(QueryError):
            db.task_query(None, projection=["workflow_id"], aggregation=[("count", "*")], sort=[("count", 2)])
        with pytest.raises(QueryError):
            db.task_query(None, projection=["workflow_id"], aggregation=[("count", "*")], limit=-1)


class TestIdProjection:
    def test_id_excluded_beside_inclusions(self, seeded, db):
        """{"_id": 0, field: 1} includes the fields (records have no _id), in find and as an aggregation's group."""
        assert seeded.find("tasks", {"task_id": "t2"}, projection={"_id": 0, "status": 1, "used.x": 1}) == [
            {"status": "RUNNING", "used": {"x": 2}}]
        assert db.task_query({"workflow_id": "w1"}, projection={"_id": 0, "activity_id": 1},
                             aggregation=[("count", "*")]) == [{"activity_id": "train", "count": 2}]

    def test_id_excluded_alone(self, seeded):
        """{"_id": 0} alone is an exclusion that leaves the record whole."""
        assert seeded.find("tasks", {"task_id": "t2"}, projection={"_id": 0}) == [TASKS[1]]

    def test_other_mixes_still_refused(self, seeded):
        """Mixing inclusion and exclusion of fields other than _id still raises QueryError."""
        with pytest.raises(QueryError, match="mix"):
            seeded.find("tasks", projection={"_id": 0, "status": 1, "n": 0})


REGEX_RECORDS = {"r1": "foo bar", "r2": "foobar", "r3": "a.b\nc", "r4": "a\nb", "r5": "a\\b", "r6": "done\n",
                 "r7": "Été x", "r8": "a\bb"}

# (pattern, $options, expected record ids): what Python's re (MongoDB's PCRE alike) finds.
REGEX_CASES = [
    ("\\bbar\\b", "", {"r1"}),
    ("\\Bbar", "", {"r2"}),
    ("\\bÉté\\b", "", {"r7"}),
    ("\\bét", "i", {"r7"}),
    ("a\\\\b", "", {"r5"}),  # an escaped backslash, then "b": not a word boundary
    ("a[\\b]b", "", {"r8"}),  # in a set, \b is a backspace
    ("a.b", "", {"r3", "r5", "r8"}),
    ("b.c", "", set()),
    ("(?s)b.c", "", {"r3"}),
    ("a[^x]b", "", {"r3", "r4", "r5", "r8"}),  # a negated set matches a newline
    ("done$", "", {"r6"}),  # $ also matches before a final newline
    ("^b", "", set()),
    ("(?m)^b$", "", {"r4"}),
    ("(?i)(?m)^C", "", {"r3"}),
    ("(?m)a.b", "i", {"r3", "r5", "r8"}),
]


class TestRegexParity:
    @pytest.mark.parametrize("pattern,options,expected", REGEX_CASES, ids=[repr(c[:2]) for c in REGEX_CASES])
    def test_regex(self, store, pattern, options, expected):
        """Word boundaries, newlines and flags match as in Python on every store."""
        store.upsert([{"type": "task", "task_id": k, "workflow_id": "w", "v": v} for k, v in REGEX_RECORDS.items()])
        spec = {"$regex": pattern, **({"$options": options} if options else {})}
        assert {d["task_id"] for d in store.find("tasks", {"v": spec})} == expected


@pytest.mark.postgres
def test_regex_postgres_cannot_run_is_query_error(pg_store_dsn):
    """A pattern PostgreSQL cannot run (a named group) raises QueryError naming the regular expression."""
    from flowcept.store.postgres import PostgresStore

    store = PostgresStore(pg_store_dsn)
    try:
        with pytest.raises(QueryError, match="regular expression"):
            store.find("tasks", {"v": {"$regex": "(?P<n>foo)"}})
    finally:
        store.close()
