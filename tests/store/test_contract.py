"""The Store contract: every backend gives these answers (add a backend by adding a branch to the store fixture)."""

from __future__ import annotations

import multiprocessing
import os
import stat
import tempfile

import pytest

from flowcept.errors import QueryError, StoreError
from flowcept.store.sqlite import SqliteStore

from ._cases import FILTER_CASES, SORT_CASES, TASKS

@pytest.fixture(name="seeded")
def fixture_seeded(store):
    assert store.upsert([dict(t) for t in TASKS]) == len(TASKS)
    return store


def _ids(docs):
    return {d["task_id"] for d in docs}


class TestFilters:
    @pytest.mark.parametrize("flt,expected", FILTER_CASES, ids=[repr(c[0]) for c in FILTER_CASES])
    def test_filter(self, seeded, flt, expected):
        """Each filter matches exactly the expected tasks, and count agrees with find."""
        assert _ids(seeded.find("tasks", flt)) == expected
        assert seeded.count("tasks", flt) == len(expected)

    def test_sql_like_values_are_stored_as_data(self, seeded):
        """A value that looks like SQL or an operator is stored and read back verbatim."""
        (doc,) = seeded.find("tasks", {"task_id": "t5"})
        assert doc == TASKS[4]
        (doc,) = seeded.find("tasks", {"task_id": "t4"})
        assert doc["custom_metadata"] == {"note": "$5"}
        assert seeded.count("tasks") == 5

    @pytest.mark.parametrize("flt,word", [
        ({"n": {"$where": "1"}}, "$where"),
        ({"$text": {"$search": "x"}}, "$text"),
        ({"n": {"$elemMatch": {"$gt": 1}}}, "$elemMatch"),
    ])
    def test_unknown_operator(self, seeded, flt, word):
        """An unknown operator raises QueryError naming it and listing the supported ones."""
        with pytest.raises(QueryError) as info:
            seeded.find("tasks", flt)
        assert word in str(info.value) and "$regex" in str(info.value) and "$nin" in str(info.value)

    @pytest.mark.parametrize("flt", [
        {"a..b": 1}, {'a"b': 1}, {"a\x00b": 1}, {"a\nb": 1}, {"": 1}, {"x": {"$in": 5}}, {"$or": []},
        {"$and": {"a": 1}},
        {"x": {"$options": "i"}}, {"x": {"$regex": "a", "$options": "q"}}, {"x": {"$regex": "("}},
        {"x": {"$gt": [1]}}, {"x": {"$not": 5}}, {"x": {"$eq": 1, "y": 2}},
        {"x": "a\x00b"}, {"x": {"$in": ["ok", "a\x00b"]}}, {"x": {"$gt": "\x00"}}, {"used.k\\z": 1},
    ])
    def test_malformed_filter(self, seeded, flt):
        """Malformed filters raise QueryError before touching the database."""
        with pytest.raises(QueryError):
            seeded.find("tasks", flt)

    def test_full_precision_floats_compare_exactly(self, store):
        """Timestamps with 17 significant digits compare exactly ($gt, $gte, $lt, $eq), as paging cursors need."""
        times = [1796092392.4545379, 1796092392.454538, 1796092392.4545383]
        assert store.upsert([{"type": "task", "task_id": f"f{i}", "started_at": t} for i, t in enumerate(times)]) == 3
        assert _ids(store.find("tasks", {"started_at": {"$gt": times[0]}})) == {"f1", "f2"}
        assert _ids(store.find("tasks", {"started_at": {"$gte": times[1]}})) == {"f1", "f2"}
        assert _ids(store.find("tasks", {"started_at": {"$lt": times[2]}})) == {"f0", "f1"}
        assert _ids(store.find("tasks", {"started_at": times[1]})) == {"f1"}

    def test_keys_with_spaces_quotes_colons_and_letters_are_queryable(self, store):
        """Keys of any text but a double quote or a control character are fields like any other: filtered on,
        projected and sorted by (the "object:<id>" keys saved objects add, a parameter named in Greek, a metric
        with a space, a key with a single quote, which must not reach the SQL as text)."""
        docs = [{"type": "task", "task_id": f"k{i}", "workflow_id": "wf-keys",
                 "generated": {"object:0b5c-11": {"version": i}, "val loss": 1.0 - i / 10, "it's": f"v{i}"},
                 "used": {"α": i}} for i in range(3)]
        assert store.upsert(docs) == 3
        assert _ids(store.find("tasks", {"generated.object:0b5c-11.version": 1})) == {"k1"}
        assert _ids(store.find("tasks", {"used.α": {"$gte": 1}})) == {"k1", "k2"}
        assert _ids(store.find("tasks", {"generated.it's": "v2"})) == {"k2"}
        assert _ids(store.find("tasks", {"generated.it's') OR 1=1 --": "v2"})) == set()
        got = store.find("tasks", {"workflow_id": "wf-keys"}, projection=["task_id", "generated.val loss"],
                         sort=[("generated.val loss", 1)])
        assert got == [{"task_id": "k2", "generated": {"val loss": 0.8}},
                       {"task_id": "k1", "generated": {"val loss": 0.9}},
                       {"task_id": "k0", "generated": {"val loss": 1.0}}]

    def test_unknown_collection(self, seeded):
        """An unknown collection raises QueryError listing the collections."""
        with pytest.raises(QueryError, match="tasks"):
            seeded.find("objects", {})


class TestSortProjectionLimit:
    @pytest.mark.parametrize("sort,expected", SORT_CASES, ids=[repr(c[0]) for c in SORT_CASES])
    def test_sort(self, seeded, sort, expected):
        """Sorting orders by type rank then value, missing first ascending."""
        assert [d["task_id"] for d in seeded.find("tasks", sort=sort)] == expected

    def test_sort_brackets_types(self, seeded):
        """Mixed types sort null < numbers < strings."""
        docs = seeded.find("tasks", {"task_id": {"$in": ["t1", "t2", "t3", "t4"]}}, sort=[("n", 1)])
        assert [d["task_id"] for d in docs] == ["t4", "t1", "t3", "t2"]

    def test_limit(self, seeded):
        """limit caps the result after sorting; 0 means no limit."""
        assert [d["task_id"] for d in seeded.find("tasks", sort=[("started_at", 1)], limit=2)] == ["t5", "t1"]
        assert len(seeded.find("tasks", limit=0)) == 5

    def test_bad_sort_and_limit(self, seeded):
        """A bad sort direction or limit raises QueryError."""
        with pytest.raises(QueryError):
            seeded.find("tasks", sort=[("n", 2)])
        with pytest.raises(QueryError):
            seeded.find("tasks", limit=-1)

    def test_projection_list(self, seeded):
        """A list projection keeps only those fields, nesting dotted ones."""
        assert seeded.find("tasks", {"task_id": "t1"}, projection=["task_id", "used.x", "nope"]) == [
            {"task_id": "t1", "used": {"x": 1}}]

    def test_projection_dict(self, seeded):
        """A {field: 1} dict includes, a {field: 0} dict excludes."""
        assert seeded.find("tasks", {"task_id": "t2"}, projection={"status": 1}) == [{"status": "RUNNING"}]
        (doc,) = seeded.find("tasks", {"task_id": "t1"}, projection={"used": 0, "generated.loss": 0, "tags": 0})
        assert "used" not in doc and "tags" not in doc and doc["generated"] == {} and doc["task_id"] == "t1"

    def test_projection_mixed(self, seeded):
        """Mixing inclusion and exclusion raises QueryError."""
        with pytest.raises(QueryError):
            seeded.find("tasks", projection={"a": 1, "b": 0})


class TestAggregate:
    def test_grouped(self, seeded):
        """avg/sum/min/max use numbers only; groups come out ordered by key."""
        out = seeded.aggregate("tasks", None, "activity_id", [("avg", "used.x"), ("sum", "used.x"),
                                                              ("min", "used.x"), ("max", "used.x"),
                                                              ("count", "used.x"), ("count", "*")])
        assert out == [
            {"activity_id": "'; DROP TABLE tasks; --", "avg_used_x": None, "sum_used_x": 0, "min_used_x": None,
             "max_used_x": None, "count_used_x": 0, "count": 1},
            {"activity_id": "eval", "avg_used_x": 3.0, "sum_used_x": 3, "min_used_x": 3, "max_used_x": 3,
             "count_used_x": 2, "count": 2},
            {"activity_id": "train", "avg_used_x": 1.5, "sum_used_x": 3, "min_used_x": 1, "max_used_x": 2,
             "count_used_x": 2, "count": 2},
        ]

    def test_filtered_ungrouped(self, seeded):
        """Without group_by, one record aggregates every matching task."""
        out = seeded.aggregate("tasks", {"workflow_id": "w1"}, None, [("avg", "generated.loss"), ("max", "started_at")])
        assert out == [{"avg_generated_loss": 0.375, "max_started_at": 2.0}]
        assert seeded.aggregate("tasks", {"workflow_id": "none"}, None, [("sum", "used.x")]) == []

    def test_group_by_mixed_types(self, seeded):
        """Group keys keep their JSON type: null, numbers, strings, arrays."""
        out = seeded.aggregate("tasks", None, "n", [("count", "*")])
        assert out == [{"n": None, "count": 1}, {"n": 5, "count": 1}, {"n": 7.5, "count": 1},
                       {"n": "7", "count": 1}, {"n": [5, 10], "count": 1}]

    def test_unknown_aggregation(self, seeded):
        """An unknown aggregation operator raises QueryError."""
        with pytest.raises(QueryError, match="median"):
            seeded.aggregate("tasks", None, "activity_id", [("median", "used.x")])


class TestWrites:
    def test_delete(self, seeded):
        """delete removes matching records and returns their count."""
        assert seeded.delete("tasks", {"workflow_id": "w2"}) == 2
        assert _ids(seeded.find("tasks")) == {"t1", "t2", "t5"}
        assert seeded.delete("tasks", {"workflow_id": "nope"}) == 0
        assert seeded.delete("tasks", {}) == 3
        assert seeded.count("tasks") == 0

    def test_upsert_merges_across_batches(self, store):
        """RUNNING then FINISHED merge; a late RUNNING does not overwrite FINISHED."""
        store.upsert([{"type": "task", "task_id": "x", "status": "RUNNING", "used": {"a": 1}, "started_at": 1.0}])
        store.upsert([{"type": "task", "task_id": "x", "status": "FINISHED", "generated": {"b": 2}, "ended_at": 2.0}])
        store.upsert([{"type": "task", "task_id": "x", "status": "RUNNING", "used": {"c": 3}}])
        assert store.find("tasks", {"task_id": "x"}) == [
            {"type": "task", "task_id": "x", "status": "FINISHED", "used": {"a": 1, "c": 3}, "started_at": 1.0,
             "generated": {"b": 2}, "ended_at": 2.0}]

    def test_upsert_merges_within_batch(self, store):
        """Messages for one id in one batch merge before writing."""
        n = store.upsert([{"type": "task", "task_id": "y", "status": "FINISHED"},
                          {"type": "task", "task_id": "y", "status": "RUNNING", "used": {"a": 1}}])
        assert n == 1
        assert store.find("tasks") == [{"type": "task", "task_id": "y", "status": "FINISHED", "used": {"a": 1}}]

    def test_upsert_routes_collections(self, store):
        """Records go to their collection; objects, control messages and id-less records are skipped."""
        n = store.upsert([
            {"type": "workflow", "workflow_id": "w", "name": "wf", "started_at": 1.5},
            {"type": "agent", "agent_id": "a", "name": "bot"},
            {"task_id": "t"},
            {"type": "object", "object_id": "o"},
            {"type": "flowcept_control", "info": "stop"},
            {"type": "task", "activity_id": "no_id"},
        ])
        assert n == 3
        assert store.find("workflows") == [{"type": "workflow", "workflow_id": "w", "name": "wf", "started_at": 1.5}]
        assert store.find("agents", {"agent_id": "a"}) == [{"type": "agent", "agent_id": "a", "name": "bot"}]
        assert store.count("tasks") == 1
        assert store.upsert([]) == 0

    def test_close_idempotent_and_context_manager(self, tmp_path):
        """close() can be called twice; the store is a context manager."""
        with SqliteStore(tmp_path / "c.sqlite") as store:
            store.upsert([{"type": "task", "task_id": "a"}])
        store.close()
        with pytest.raises(StoreError):
            store.count("tasks")


def _write_many(store, worker: int, n: int) -> None:
    batch = [{"type": "task", "task_id": f"w{worker}-{i}", "workflow_id": "mp", "status": "FINISHED"}
             for i in range(n)]
    for start in range(0, n, 500):
        store.upsert(batch[start:start + 500])


def _spawn_worker(path: str, worker: int, n: int) -> None:
    with SqliteStore(path) as store:
        _write_many(store, worker, n)


class TestSqliteStore:
    def test_four_processes_one_file(self, tmp_path):
        """Four processes upserting 5,000 distinct tasks each into one file store exactly 20,000."""
        path = tmp_path / "mp.sqlite"
        store = SqliteStore(path)
        store.upsert([{"type": "task", "task_id": "seed", "workflow_id": "seed"}])  # open before forking
        if "fork" in multiprocessing.get_all_start_methods():
            # Children reuse the parent's store object: it must notice the fork and reopen its connection.
            ctx = multiprocessing.get_context("fork")
            procs = [ctx.Process(target=_write_many, args=(store, w, 5000)) for w in range(4)]
        else:  # pragma: no cover - non-Linux
            ctx = multiprocessing.get_context("spawn")
            procs = [ctx.Process(target=_spawn_worker, args=(str(path), w, 5000)) for w in range(4)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(120)
            assert p.exitcode == 0
        assert store.count("tasks", {"workflow_id": "mp"}) == 20_000
        assert store.count("tasks") == 20_001
        store.close()

    def test_threads_share_a_store(self, tmp_path):
        """Several threads can upsert and read through one store."""
        import threading

        store = SqliteStore(tmp_path / "th.sqlite")
        threads = [threading.Thread(target=_write_many, args=(store, w, 1000)) for w in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert store.count("tasks") == 4000
        store.close()

    def test_creates_parent_dirs_and_indexes(self, tmp_path):
        """The file's folders are created and task queries by workflow_id use the expression index."""
        store = SqliteStore(tmp_path / "a" / "b" / "s.sqlite")
        store.upsert([{"type": "task", "task_id": "a", "workflow_id": "w"}])
        assert (tmp_path / "a" / "b" / "s.sqlite").exists()
        from flowcept.store._filters import SQLITE, compile_filter

        where, params = compile_filter({"workflow_id": "w"}, SQLITE)
        plan = store._conn().execute(f"EXPLAIN QUERY PLAN SELECT doc FROM tasks WHERE {where}", params).fetchall()
        assert "tasks_workflow_id" in " ".join(str(row) for row in plan)
        store.close()

    @pytest.mark.parametrize("flt, index", [
        ({"activity_id": "f"}, "tasks_activity_id"),
        ({"status": {"$in": ["FINISHED", "ERROR"]}}, "tasks_status"),
        ({"started_at": {"$gte": 2, "$lt": 4}}, "tasks_started_at"),
        ({"parent_task_id": "t1"}, "tasks_parent_task_id"),
    ])
    def test_task_queries_are_indexed(self, tmp_path, flt, index):
        """Queries by activity, status, start time (ranges too) and parent use an index, and answer exactly."""
        from flowcept.store._filters import SQLITE, compile_filter

        store = SqliteStore(tmp_path / "i.sqlite")
        store.upsert([{"type": "task", "task_id": f"t{i}", "workflow_id": "w", "activity_id": "fg"[i % 2],
                       "status": "FINISHED" if i % 3 else "ERROR", "started_at": float(i),
                       **({"parent_task_id": "t1"} if i > 5 else {})} for i in range(8)])
        where, params = compile_filter(flt, SQLITE)
        plan = store._conn().execute(f"EXPLAIN QUERY PLAN SELECT doc FROM tasks WHERE {where}", params).fetchall()
        assert f"USING INDEX {index} " in " ".join(str(row) for row in plan)
        expected = {"tasks_activity_id": ["t0", "t2", "t4", "t6"], "tasks_status": [f"t{i}" for i in range(8)],
                    "tasks_started_at": ["t2", "t3"], "tasks_parent_task_id": ["t6", "t7"]}[index]
        assert sorted(d["task_id"] for d in store.find("tasks", flt)) == expected
        store.close()

    def test_read_only_file(self):
        """Writing to a read-only file raises StoreError naming the path."""
        folder = tempfile.mkdtemp()
        try:
            os.chmod(folder, 0o755)
            path = os.path.join(folder, "ro.sqlite")
            with SqliteStore(path) as store:
                store.upsert([{"type": "task", "task_id": "a"}])
            os.chmod(path, stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
            if os.geteuid() != 0:
                with pytest.raises(StoreError, match="ro.sqlite"):
                    SqliteStore(path).upsert([{"type": "task", "task_id": "b"}])
                return
            # root ignores file modes: check in a forked child that drops to an unprivileged user.
            pid = os.fork()
            if pid == 0:  # pragma: no cover - child
                code = 3
                try:
                    os.setgid(65534)
                    os.setuid(65534)
                    try:
                        SqliteStore(path).upsert([{"type": "task", "task_id": "b"}])
                        code = 1
                    except StoreError as exc:
                        code = 0 if path in str(exc) else 2
                finally:
                    os._exit(code)
            _, status = os.waitpid(pid, 0)
            assert os.waitstatus_to_exitcode(status) == 0
        finally:
            import shutil

            shutil.rmtree(folder, ignore_errors=True)

    def test_unwritable_location(self):
        """A path that cannot be created raises StoreError naming it."""
        with pytest.raises(StoreError, match="x.sqlite"):
            SqliteStore("/proc/flowcept-no/x.sqlite").count("tasks")

    @pytest.mark.slow
    def test_upsert_throughput(self, tmp_path):
        """100,000 small tasks upsert in one call, every one counted (the time is reported by bench/bench_pace.py)."""
        store = SqliteStore(tmp_path / "perf.sqlite")
        recs = [{"type": "task", "task_id": f"t{i}", "workflow_id": "wf", "activity_id": f"a{i % 10}",
                 "status": "FINISHED", "started_at": 1.0 + i, "ended_at": 2.0 + i, "used": {"x": i}}
                for i in range(100_000)]
        assert store.upsert(recs) == 100_000
        assert store.count("tasks") == 100_000
        store.close()


def test_encoded_merge_keeps_null_inputs(tmp_path):
    """A redelivered or updated task keeps inputs whose value is null (merge rules, not JSON merge-patch)."""
    from flowcept.buffer import EncodedBatch
    from flowcept.store.sqlite import SqliteStore

    store = SqliteStore(tmp_path / "m.sqlite")
    rec = {"type": "task", "task_id": "t", "used": {"x": None, "y": 1}, "status": "FINISHED"}
    store.upsert_encoded(EncodedBatch.from_docs([rec]))
    store.upsert_encoded(EncodedBatch.from_docs([{**rec, "status": "RUNNING", "generated": {"z": 2}}]))
    assert store.find("tasks", {"task_id": "t"}) == [{**rec, "generated": {"z": 2}}]
    store.close()
