"""The PostgreSQL dialect of the filter compiler gives the SQLite store's answers on a real JSONB table."""

from __future__ import annotations

import os

import pytest

from flowcept.store._filters import POSTGRES, compile_aggregate, compile_filter, compile_order_by
from flowcept.store.sqlite import SqliteStore

from ._cases import FILTER_CASES, SORT_CASES, TASKS

pytestmark = pytest.mark.postgres

PG_DSN = os.environ.get("FLOWCEPT_TEST_PG_DSN", "host=127.0.0.1 port=5432 user=postgres dbname=test")


@pytest.fixture(name="pg", scope="module")
def fixture_pg():
    psycopg = pytest.importorskip("psycopg")
    from psycopg.types.json import Jsonb

    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute("CREATE TEMP TABLE tasks (id TEXT PRIMARY KEY, doc JSONB NOT NULL)")
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO tasks (id, doc) VALUES (%s, %s)", [(t["task_id"], Jsonb(t)) for t in TASKS])
        yield conn


@pytest.fixture(name="lite", scope="module")
def fixture_lite(tmp_path_factory):
    store = SqliteStore(tmp_path_factory.mktemp("dialect") / "d.sqlite")
    store.upsert([dict(t) for t in TASKS])
    yield store
    store.close()


class TestPostgresDialect:
    @pytest.mark.parametrize("flt,expected", FILTER_CASES, ids=[repr(c[0]) for c in FILTER_CASES])
    def test_filter_matches_sqlite(self, pg, lite, flt, expected):
        """Each compiled WHERE clause selects the same tasks as the SQLite store."""
        where, params = compile_filter(flt, POSTGRES)
        got = {row[0] for row in pg.execute(f"SELECT id FROM tasks WHERE {where}", params)}
        assert got == expected == {d["task_id"] for d in lite.find("tasks", flt)}

    @pytest.mark.parametrize("sort,expected", SORT_CASES, ids=[repr(c[0]) for c in SORT_CASES])
    def test_sort_matches_sqlite(self, pg, lite, sort, expected):
        """ORDER BY on extracted values orders rows as the SQLite store does."""
        order, params = compile_order_by(sort, POSTGRES)
        got = [row[0] for row in pg.execute(f"SELECT id FROM tasks{order}", params)]
        assert got == expected == [d["task_id"] for d in lite.find("tasks", sort=sort)]

    @pytest.mark.parametrize("group_by", ["activity_id", "n", None])
    def test_aggregate_matches_sqlite(self, pg, lite, group_by):
        """Grouped aggregations decode to the same records as the SQLite store's."""
        aggs = [("avg", "used.x"), ("sum", "used.x"), ("min", "n"), ("max", "started_at"), ("count", "used.x"),
                ("count", "*")]
        select, params, group_sql, decode, sort_key = compile_aggregate(group_by, aggs, POSTGRES)
        rows = pg.execute(f"SELECT {select} FROM tasks WHERE TRUE{group_sql}", params)
        got = [rec for rec in map(decode, rows) if rec is not None]
        if sort_key:
            got.sort(key=sort_key)
        assert got == lite.aggregate("tasks", None, group_by, aggs)

    def test_values_are_parameters(self):
        """Values and path segments never appear in the SQL text."""
        where, params = compile_filter({"custom_metadata.note": "'; DROP TABLE tasks; --"}, POSTGRES)
        assert "DROP" not in where and "note" not in where
        assert "'; DROP TABLE tasks; --" in params and ["custom_metadata", "note"] in params
