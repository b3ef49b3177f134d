"""Lineage rules the guide states, on SQLite and PostgreSQL: a task never links to itself; with match_values a value
is one argument or output (a list's element is none), the same rule the PROV export follows."""

from __future__ import annotations

import pytest

from flowcept.query.lineage import downstream, edges, upstream
from flowcept.store.sqlite import SqliteStore


def T(task_id, **fields):
    return {"type": "task", "task_id": task_id, "workflow_id": "w", **fields}


@pytest.fixture(name="store", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def fixture_store(request, tmp_path):
    """An empty store of each backend."""
    if request.param == "sqlite":
        store = SqliteStore(tmp_path / "lineage.sqlite")
        yield store
        store.close()
        return
    pytest.importorskip("psycopg")
    from flowcept.store.postgres import PostgresStore
    from tests.store._pg import private_schema

    with private_schema(request.getfixturevalue("pg_dsn")) as dsn:
        store = PostgresStore(dsn)
        yield store
        store.close()


def test_a_task_naming_itself_is_no_edge(store):
    """A task listing itself in dependencies, dependents or as its parent has no edge to itself."""
    store.upsert([T("t3", started_at=1.0, dependencies=["t3", "ghost"], dependents=["t3", "t4"],
                    parent_task_id="t3"),
                  T("t4", started_at=2.0)])
    assert list(edges(store, "w")) == [("t3", "t4", "dependency")]
    assert [t["task_id"] for t in downstream(store, "t3")] == ["t4"]


def test_value_is_an_argument_or_an_output(store):
    """Equal scalars link top-level entries of used/generated (and a scalar used as a whole); an element of a list
    or a scalar inside a nested dict does not link on its own."""
    store.upsert([
        T("p", started_at=1.0, generated={"scores": [10, 20, 30], "nested": {"best": 55}}),
        T("q", started_at=2.0, used={"v": 20}),
        T("q2", started_at=2.0, used={"v": 55}),
        T("r", started_at=3.0, generated={"best": 77}),
        T("s", started_at=4.0, used={"v": 77}),
        T("s2", started_at=4.0, used=77),
        T("lst", started_at=4.0, used=[77]),
    ])
    assert list(edges(store, "w", match_values=True)) == [("r", "s", "value"), ("r", "s2", "value")]
    assert upstream(store, "q", match_values=True) == []
    assert [t["task_id"] for t in downstream(store, "r", match_values=True)] == ["s", "s2"]
