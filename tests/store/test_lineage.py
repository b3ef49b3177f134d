"""Lineage contract, on every store: edges from parents, dependencies and data; directed walks; depth limits;
cycles; value matching only when asked; the links kept by the store's triggers through updates and deletes."""

from __future__ import annotations

import pytest

from flowcept.errors import QueryError
from flowcept.query.lineage import downstream, edges, tasks_recursive, upstream
from flowcept.store.lineage import LINKS_VERSION


def T(task_id, wf="w", **fields):
    return {"type": "task", "task_id": task_id, "workflow_id": wf, **fields}


def ids(docs):
    return [d["task_id"] for d in docs]


@pytest.fixture(name="diamond")
def fixture_diamond(store):
    """a -> b, a -> c, b -> d, c -> d, d -> e (child), with s a sibling of d fed by b only, and x unrelated.

    a->b by object id, a->c by dependency, b->d by content hash, c->d by dependents, d->e by parent."""
    store.upsert([
        T("a", started_at=1.0, generated={"model": {"object_id": "obj-1"}}, dependents=["c"]),
        T("b", started_at=2.0, used={"m": [{"object_id": "obj-1"}]}, generated={"file": {"sha256": "ab12"}}),
        T("c", started_at=2.5, dependencies=["a"], dependents=["d"]),
        T("d", started_at=3.0, used={"f": {"data_sha256": "ab12"}}),
        T("s", started_at=3.5, used={"again": {"sha256": "ab12"}}),
        T("e", started_at=4.0, parent_task_id="d"),
        T("x", started_at=0.5, used={"n": 12345}, generated={"object_id": "other"}),
    ])
    return store


class TestEdges:
    def test_diamond_edges(self, diamond):
        """Each kind of evidence gives its edge; nothing links the unrelated task."""
        assert list(edges(diamond, "w")) == [
            ("a", "b", "data"), ("a", "c", "dependency"), ("b", "d", "data"), ("b", "s", "data"),
            ("c", "d", "dependency"), ("d", "e", "parent")]

    def test_unknown_workflow(self, diamond):
        """An unknown workflow has no edges."""
        assert list(edges(diamond, "nope")) == []

    def test_edges_stay_inside_the_workflow(self, diamond):
        """A producer in another workflow is no edge of this one."""
        diamond.upsert([T("y", wf="w2", started_at=0.1, generated={"object_id": "obj-1"})])
        assert ("y", "b", "data") not in list(edges(diamond, "w"))
        assert list(edges(diamond, "w2")) == []
        assert ids(upstream(diamond, "b")) == ["y", "a"]  # walks cross workflows


class TestWalks:
    def test_upstream_of_a_diamond(self, diamond):
        """Upstream of e is d, both sides of the diamond and its top; never the sibling s nor x."""
        assert ids(upstream(diamond, "e")) == ["a", "b", "c", "d"]
        assert ids(upstream(diamond, "s")) == ["a", "b"]

    def test_downstream(self, diamond):
        """Downstream of a is everything it fed, in start order; of e nothing."""
        assert ids(downstream(diamond, "a")) == ["b", "c", "d", "s", "e"]
        assert ids(downstream(diamond, "c")) == ["d", "e"]
        assert downstream(diamond, "e") == []

    def test_depth_limits(self, diamond):
        """depth counts edges: 0 gives nothing, 1 the neighbours, 2 one more level."""
        assert upstream(diamond, "e", depth=0) == []
        assert ids(upstream(diamond, "e", depth=1)) == ["d"]
        assert ids(upstream(diamond, "e", depth=2)) == ["b", "c", "d"]
        assert ids(downstream(diamond, "a", depth=1)) == ["b", "c"]
        assert ids(downstream(diamond, "a", depth=10 ** 12)) == ["b", "c", "d", "s", "e"]

    def test_projection_and_records(self, diamond):
        """Walks return whole stored records, or the projected fields."""
        (d,) = upstream(diamond, "e", depth=1)
        assert d == T("d", started_at=3.0, used={"f": {"data_sha256": "ab12"}})
        assert upstream(diamond, "e", depth=1, projection=["task_id"]) == [{"task_id": "d"}]

    @pytest.mark.parametrize("bad", [-1, 1.5, True, "2"])
    def test_bad_depth(self, diamond, bad):
        """A depth that is not a non-negative int is a QueryError."""
        with pytest.raises(QueryError, match="depth"):
            upstream(diamond, "e", depth=bad)

    def test_unknown_task(self, diamond):
        """An unknown task id is a QueryError naming it."""
        with pytest.raises(QueryError, match="'nope'"):
            downstream(diamond, "nope")


class TestFanOut:
    def test_fan_out_and_fan_in(self, store):
        """One producer feeding 50 consumers that all feed one sink: directions never mix."""
        store.upsert([T("src", started_at=0.0, generated={"object_id": "o"})] +
                     [T(f"c{i:02d}", started_at=1.0 + i, used={"in": {"object_id": "o"}},
                        generated={"object_id": f"o{i}"}) for i in range(50)] +
                     [T("sink", started_at=100.0, dependencies=[f"c{i:02d}" for i in range(50)])])
        fan = [f"c{i:02d}" for i in range(50)]
        assert ids(downstream(store, "src", depth=1)) == fan
        assert ids(downstream(store, "src")) == fan + ["sink"]
        assert ids(upstream(store, "sink")) == ["src"] + fan
        assert ids(upstream(store, "c07")) == ["src"]
        assert ids(downstream(store, "c07")) == ["sink"]
        assert len(list(edges(store, "w"))) == 100


class TestCycles:
    def test_task_using_what_it_generated(self, store):
        """A task that used and generated one object, in a ring with others, ends and never lists itself."""
        store.upsert([T("p", used={"object_id": "o"}, generated={"object_id": "o"}),
                      T("q", dependencies=["r"], parent_task_id="p"), T("r", dependencies=["q"])])
        assert ids(upstream(store, "q")) == ["p", "r"]
        assert ids(downstream(store, "q")) == ["r"]
        assert ids(upstream(store, "q", depth=50)) == ["p", "r"]
        assert ids(downstream(store, "p")) == ["q", "r"]
        assert ("p", "p", "data") not in list(edges(store, "w"))

    def test_later_generator_is_not_upstream(self, store):
        """Two tasks updating one object in place link forward in time only."""
        store.upsert([T("first", started_at=1.0, used={"object_id": "m"}, generated={"object_id": "m"}),
                      T("second", started_at=2.0, used={"object_id": "m"}, generated={"object_id": "m"})])
        assert list(edges(store, "w")) == [("first", "second", "data")]
        assert upstream(store, "first") == []


class TestValueMatching:
    @pytest.fixture(name="values")
    def fixture_values(self, store):
        store.upsert([
            T("g", started_at=1.0, generated={"path": "/data/out.csv", "n": 4096, "one": 1, "flag": True,
                                              "c": "x", "none": None, "zero": 0.0, "ratio": 0.25}),
            T("u1", started_at=2.0, used={"input": "/data/out.csv"}),
            T("u2", started_at=2.0, used={"size": 4096.0}),
            T("u3", started_at=2.0, used={"a": 1, "b": True, "c": "x", "d": None, "e": 0, "f": -1}),
            T("u4", started_at=2.0, used={"ratio": "0.25"}),
            T("early", started_at=0.5, used={"path": "/data/out.csv"}),
            T("other", wf="w2", started_at=3.0, used={"path": "/data/out.csv"}),
        ])
        return store

    def test_only_when_asked(self, values):
        """Equal plain values link nothing unless match_values is set."""
        assert list(edges(values, "w")) == []
        assert downstream(values, "g") == []

    def test_non_trivial_values_match(self, values):
        """Strings and numbers (4096 == 4096.0) link; trivial values, strings vs numbers, earlier tasks and other
        workflows do not."""
        assert list(edges(values, "w", match_values=True)) == [("g", "u1", "value"), ("g", "u2", "value")]
        assert ids(downstream(values, "g", match_values=True)) == ["u1", "u2"]
        assert ids(upstream(values, "u2", match_values=True)) == ["g"]
        assert upstream(values, "u3", match_values=True) == []


class TestLinksFollowWrites:
    def test_update_and_delete(self, store):
        """Links follow merges (a later message adds inputs) and deletes."""
        store.upsert([T("a", started_at=1.0, generated={"object_id": "o"}), T("b", started_at=2.0)])
        assert list(edges(store, "w")) == []
        store.upsert([T("b", used={"x": {"object_id": "o"}}, status="FINISHED")])
        assert list(edges(store, "w")) == [("a", "b", "data")]
        store.delete("tasks", {"task_id": "a"})
        assert list(edges(store, "w")) == []
        assert list(store.run_sql([("SELECT task_id, kind, value FROM task_links ORDER BY 1", [])])) == [
            ("b", "used", "o:o")]

    def test_encoded_batches(self, store):
        """Records written through the encoded fast path get their links too."""
        from flowcept.buffer import EncodedBatch

        store.upsert_encoded(EncodedBatch.from_docs([T("a", dependencies=["z"]), T("z", generated={"sha256": "h"}),
                                                     T("q", used={"sha256": "h"})]))
        assert list(edges(store, "w")) == [("z", "a", "dependency"), ("z", "q", "data")]


class TestTasksRecursive:
    def test_forest(self, store):
        """Roots at depth 0, children with their ancestor chain; max_depth cuts; mapping renames fields."""
        store.upsert([T("r", activity_id="main", started_at=1.0), T("k1", activity_id="loop", parent_task_id="r",
                                                                     started_at=2.0),
                      T("k2", activity_id="loop", parent_task_id="r", started_at=3.0),
                      T("g1", activity_id="step", parent_task_id="k1", started_at=2.5, used={"i": 7}),
                      T("orphan", activity_id="lost", parent_task_id="missing", started_at=0.5),
                      T("elsewhere", wf="w2", parent_task_id="r")])
        out = tasks_recursive(store, "w")
        assert [(t["task_id"], t["depth"], t["ancestor_ids"]) for t in out] == [
            ("orphan", 0, []), ("r", 0, []), ("k1", 1, [{"main": "r"}]), ("k2", 1, [{"main": "r"}]),
            ("g1", 2, [{"main": "r"}, {"loop": "k1"}])]
        assert out[-1]["used"] == {"i": 7}
        assert [t["task_id"] for t in tasks_recursive(store, "w", max_depth=1)] == ["orphan", "r", "k1", "k2"]
        assert tasks_recursive(store, "w", mapping={"act": "activity_id", "x": "used.i"})[-1] == {
            "task_id": "g1", "act": "step", "x": 7, "depth": 2, "ancestor_ids": [{"main": "r"}, {"loop": "k1"}]}
        assert tasks_recursive(store, "nope") == []


@pytest.mark.timeout(600)
@pytest.mark.slow
def test_chain_of_10000(store):
    """A 10,000-task chain (alternating parent, dependency and data edges): full walks both ways, depth limits."""
    n = 10_000
    recs = []
    for i in range(n):
        rec = T(f"t{i:05d}", started_at=float(i), generated={"object_id": f"o{i}"})
        if i:
            kind = i % 3
            if kind == 0:
                rec["parent_task_id"] = f"t{i - 1:05d}"
            elif kind == 1:
                rec["dependencies"] = [f"t{i - 1:05d}"]
            else:
                rec["used"] = {"prev": {"object_id": f"o{i - 1}"}}
        recs.append(rec)
    for start in range(0, n, 2000):
        store.upsert(recs[start:start + 2000])
    last, first = f"t{n - 1:05d}", "t00000"
    up = upstream(store, last, projection=["task_id"])
    assert ids(up) == [f"t{i:05d}" for i in range(n - 1)]
    assert len(downstream(store, first, projection=["task_id"])) == n - 1
    assert ids(upstream(store, last, depth=3)) == [f"t{i:05d}" for i in range(n - 4, n - 1)]
    assert ids(downstream(store, "t05000", depth=2)) == ["t05001", "t05002"]
    assert ids(downstream(store, last)) == [] and ids(upstream(store, first)) == []
    assert len(list(edges(store, "w"))) == n - 1


def test_links_built_for_a_store_written_before_them(store, tmp_path, request):
    """A store created by an older version (no links yet) gets its links from the stored tasks on first open."""
    store.upsert([T("a", generated={"object_id": "o"}), T("b", used={"object_id": "o"}, dependencies=["a"])])
    if store.dialect.name == "sqlite":
        from flowcept.store.sqlite import SqliteStore

        conn = store._conn()
        conn.execute(f"DROP TRIGGER tasks_links_v{LINKS_VERSION}_delete")
        conn.execute("DROP TABLE task_links")
        again = SqliteStore(store.path)
    else:
        from flowcept.store.postgres import PostgresStore

        conn = store._conn()
        conn.execute(f"DROP FUNCTION flowcept_task_links_v{LINKS_VERSION}_delete() CASCADE")
        conn.execute("DELETE FROM task_links")
        again = PostgresStore(store.dsn)
    try:
        assert list(edges(again, "w")) == [("a", "b", "data"), ("a", "b", "dependency")]
    finally:
        again.close()


def test_object_versions(store):
    """Objects saved per version link a user of version 2 to its saver only; a reference without a version links
    to every saver; the saver-side hash links exactly too."""
    def saved(v, sha):
        return {f"object:model": {"object_id": "model", "version": v, "data_sha256": sha}}

    store.upsert([T("save0", started_at=1.0, generated=saved(0, "s0")),
                  T("save1", started_at=2.0, generated=saved(1, "s1")),
                  T("save2", started_at=3.0, generated=saved(2, "s2")),
                  T("load1", started_at=4.0, used={"object:model": {"object_id": "model", "version": 1}}),
                  T("byhash", started_at=4.0, used={"m": {"data_sha256": "s2"}}),
                  T("anyver", started_at=5.0, used={"model": {"object_id": "model"}})])
    assert ids(upstream(store, "load1")) == ["save1"]
    assert ids(upstream(store, "byhash")) == ["save2"]
    assert ids(upstream(store, "anyver")) == ["save0", "save1", "save2"]
    assert ids(downstream(store, "save1")) == ["load1", "anyver"]


def test_stores_speak_sql(store):
    """Both backends are SqlStores: a dialect and a lazy, streamed run_sql."""
    from flowcept.store import SqlStore

    assert isinstance(store, SqlStore)
    store.upsert([T(f"t{i}") for i in range(2500)])
    rows = store.run_sql([("SELECT id FROM tasks ORDER BY id", [])], batch_size=1000)
    assert next(rows) == ("t0",) and sum(1 for _ in rows) == 2499
