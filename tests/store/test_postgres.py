"""What only the PostgreSQL store does: SQL merge rules, indexes, connections across threads, forks and outages."""

from __future__ import annotations

import multiprocessing
import sys
import threading
import time

import pytest

from tests.fix_proxy import TcpProxy

from flowcept.errors import StoreError
from flowcept.store.merge import coalesce, merge_record

from ._pg import private_schema

pytestmark = pytest.mark.postgres

psycopg = pytest.importorskip("psycopg")

from flowcept.buffer import EncodedBatch  # noqa: E402
from flowcept.store.postgres import PostgresStore  # noqa: E402


@pytest.fixture(name="pg")
def fixture_pg(pg_store_dsn):
    store = PostgresStore(pg_store_dsn)
    for collection in ("tasks", "workflows", "agents"):
        store.delete(collection, {})
    yield store
    store.close()


MERGE_CASES = [
    ({"task_id": "t", "x": 1, "y": 2}, {"task_id": "t", "x": 3}),
    ({"used": {"a": 1, "n": {"p": 1}}, "telemetry_at_start": {"cpu": 1}},
     {"used": {"b": 2, "n": {"q": 2, "r": None}}, "telemetry_at_end": {"cpu": 2}}),
    ({"status": "FINISHED", "ended_at": 2.0}, {"status": "RUNNING", "started_at": 1.0}),
    ({"status": "FINISHED"}, {"status": "ERROR"}),
    ({"status": "ERROR"}, {"status": "FINISHED"}),
    ({"status": "RUNNING"}, {"status": "FINISHED"}),
    ({"status": "FINISHED"}, {"status": None}),
    ({"type": "task", "x": 1}, {"type": "other", "x": None}),
    ({"x": {"a": 1}}, {"x": [1, 2]}),
    ({"x": [1]}, {"x": {"a": None, "b": 1}}),
    ({"x": "$5"}, {"y": "'; DROP TABLE tasks; --"}),
]


class TestMergeFunction:
    @pytest.mark.parametrize("old,new", MERGE_CASES)
    def test_sql_merge_equals_python(self, pg, old, new):
        """flowcept_merge(old, new) in SQL gives flowcept.store.merge.merge_record's result."""
        from psycopg.types.json import Jsonb

        (got,) = pg._conn().execute("SELECT flowcept_merge(%s, %s)", (Jsonb(old), Jsonb(new))).fetchone()
        assert got == merge_record(old, new)

    def test_encoded_batch_merges_in_order(self, pg):
        """upsert_encoded merges records sharing an id in capture order, then into the stored row."""
        pg.upsert([{"type": "task", "task_id": "a", "status": "RUNNING", "used": {"x": 1}}])
        batch = [
            {"type": "task", "task_id": "a", "generated": {"y": 2}},
            {"type": "task", "task_id": "b", "status": "RUNNING", "used": {"p": 1}},
            {"type": "task", "task_id": "b", "status": "FINISHED", "generated": {"q": 2}},
            {"type": "task", "task_id": "b", "status": "RUNNING", "used": {"r": 3}},
            {"type": "task", "task_id": "a", "status": "ERROR"},
            {"type": "workflow", "workflow_id": "w", "name": "wf"},
            {"type": "agent", "agent_id": "g"},
            {"type": "object", "object_id": "o"},
            {"type": "task", "activity_id": "no id"},
        ]
        assert pg.upsert_encoded(EncodedBatch.from_docs(batch)) == 4
        expected = {"b": coalesce(batch[1:4])[0],
                    "a": merge_record({"type": "task", "task_id": "a", "status": "RUNNING", "used": {"x": 1}},
                                      merge_record(batch[0], batch[4]))}
        assert {d["task_id"]: d for d in pg.find("tasks")} == expected
        assert pg.find("workflows") == [{"type": "workflow", "workflow_id": "w", "name": "wf"}]
        assert pg.count("agents") == 1

    def test_encoded_fast_path_mixes_new_and_stored_ids(self, pg):
        """A batch holding each id once (the fast path, no grouping) inserts new ids and merges stored ones,
        keeping a stored terminal status against a later RUNNING and merging dict fields key-wise."""
        stored = [{"type": "task", "task_id": "old1", "status": "FINISHED", "used": {"x": 1}, "ended_at": 2.0},
                  {"type": "task", "task_id": "old2", "status": "RUNNING", "generated": {"a": 1}}]
        pg.upsert(stored)
        batch = [{"type": "task", "task_id": "old1", "status": "RUNNING", "used": {"y": 2}, "started_at": 1.0},
                 {"type": "task", "task_id": "new1", "status": "RUNNING"},
                 {"type": "task", "task_id": "old2", "status": "ERROR", "generated": {"b": 2}},
                 {"type": "task", "task_id": "new2", "status": "FINISHED", "used": {"z": 3}}]
        assert pg.upsert_encoded(EncodedBatch.from_docs(batch)) == 4
        assert pg._grouped_batches == 0  # no repeated id: the grouped statement was not needed
        got = {d["task_id"]: d for d in pg.find("tasks")}
        assert got == {"old1": merge_record(stored[0], batch[0]), "old2": merge_record(stored[1], batch[2]),
                       "new1": batch[1], "new2": batch[3]}
        assert got["old1"]["status"] == "FINISHED" and got["old1"]["used"] == {"x": 1, "y": 2}

    def test_encoded_duplicates_fall_back_to_grouped(self, pg):
        """Repeated ids in one batch (new and stored ones): the refused fast statement leaves nothing behind, the
        grouped one merges in capture order, and the next batches go straight to the grouped statement."""
        pg.upsert([{"type": "task", "task_id": "s", "status": "FINISHED", "used": {"a": 1}}])
        batch = [{"type": "task", "task_id": "n", "status": "RUNNING", "used": {"p": 1}},
                 {"type": "task", "task_id": "s", "status": "RUNNING", "used": {"b": 2}},
                 {"type": "task", "task_id": "u", "status": "FINISHED"},
                 {"type": "task", "task_id": "n", "status": "FINISHED", "generated": {"q": 2}},
                 {"type": "task", "task_id": "s", "used": {"c": 3}},
                 {"type": "task", "task_id": "n", "status": "RUNNING"}]
        assert pg.upsert_encoded(EncodedBatch.from_docs(batch)) == 3
        assert pg._grouped_batches > 0
        got = {d["task_id"]: d for d in pg.find("tasks")}
        assert got["n"] == coalesce([batch[0], batch[3], batch[5]])[0]
        assert got["n"]["status"] == "FINISHED"
        assert got["s"] == {"type": "task", "task_id": "s", "status": "FINISHED", "used": {"a": 1, "b": 2, "c": 3}}
        assert got["u"] == batch[2]
        assert pg.count("tasks") == 3
        # Redelivery of the same batch (grouped path now) changes nothing.
        assert pg.upsert_encoded(EncodedBatch.from_docs(batch)) == 3
        assert {d["task_id"]: d for d in pg.find("tasks")} == got

    def test_encoded_redelivery_is_idempotent(self, pg):
        """The same fast-path batch written twice gives the same rows."""
        batch = [{"type": "task", "task_id": f"t{i}", "status": "FINISHED", "used": {"i": i}} for i in range(50)]
        batch.append({"type": "workflow", "workflow_id": "w", "name": "wf"})
        assert pg.upsert_encoded(EncodedBatch.from_docs(batch)) == 51
        first = sorted(pg.find("tasks"), key=lambda d: d["task_id"])
        assert pg.upsert_encoded(EncodedBatch.from_docs(batch)) == 51
        assert sorted(pg.find("tasks"), key=lambda d: d["task_id"]) == first
        assert pg.find("workflows") == [batch[-1]]

    def test_encoded_kinds_skipped_only_when_absent(self, pg):
        """A kind whose name is not in the bytes is skipped; a name spelled with escapes, or whitespace around
        the colon, still routes the record."""
        raw = (b'[{"type": "t\\u0061sk", "task_id": "e1"},'
               b' {"type" : "workflow", "workflow_id": "w1"}, {"type":"agent","agent_id":"g1"}]')
        assert pg.upsert_encoded(EncodedBatch(raw, 3)) == 3
        assert pg.find("tasks") == [{"type": "task", "task_id": "e1"}]
        assert pg.count("workflows") == 1 and pg.count("agents") == 1
        assert pg.upsert_encoded(EncodedBatch(b'[{"type":"object","object_id":"o"}]', 1)) == 0

    def test_nul_characters_are_replaced(self, pg):
        """A string holding U+0000 (which JSONB refuses) is stored with U+FFFD instead of failing the batch."""
        assert pg.upsert([{"type": "task", "task_id": "n", "used": {"s": "a\x00b"}}]) == 1
        assert pg.upsert_encoded(EncodedBatch.from_docs([{"type": "task", "task_id": "m", "k": "\x00"}])) == 1
        assert pg.find("tasks", {"task_id": "n"})[0]["used"] == {"s": "a\ufffdb"}
        assert pg.find("tasks", {"task_id": "m"})[0]["k"] == "\ufffd"


class TestIndexes:
    @pytest.mark.parametrize("field", ["workflow_id", "campaign_id", "parent_task_id", "activity_id", "status"])
    def test_equality_uses_expression_index(self, pg, field):
        """An equality filter on an indexed top-level field is served by its expression index."""
        pg.upsert([{"type": "task", "task_id": "a", field: "v"}])
        pg._conn().execute("SET enable_seqscan = off")
        try:
            assert f"tasks_{field}" in pg.explain("tasks", {field: "v"})
            assert f"tasks_{field}" in pg.explain("tasks", {field: {"$in": ["v", "w"]}})
        finally:
            pg._conn().execute("RESET enable_seqscan")

    def test_indexed_field_keeps_type_bracketing(self, pg):
        """A number stored in an indexed field does not equal its string form."""
        pg.upsert([{"type": "task", "task_id": "a", "status": 5}, {"type": "task", "task_id": "b", "status": "5"}])
        assert [d["task_id"] for d in pg.find("tasks", {"status": "5"})] == ["b"]
        assert [d["task_id"] for d in pg.find("tasks", {"status": 5})] == ["a"]


def _write_many(store, worker: int, n: int) -> None:
    batch = [{"type": "task", "task_id": f"w{worker}-{i}", "workflow_id": "mp", "status": "FINISHED"}
             for i in range(n)]
    for start in range(0, n, 500):
        store.upsert(batch[start:start + 500])


def _fresh_schema_writer(dsn: str, worker: int, barrier) -> None:
    barrier.wait(30)
    with PostgresStore(dsn) as store:
        store.upsert([{"type": "task", "task_id": f"s{worker}", "workflow_id": "race"}])


class TestConnections:
    def test_forked_children_reopen(self, pg):
        """Four forked processes sharing the parent's store object write 20,000 tasks; the parent keeps working."""
        pg.upsert([{"type": "task", "task_id": "seed"}])  # the parent's connection exists before forking
        ctx = multiprocessing.get_context("fork")
        procs = [ctx.Process(target=_write_many, args=(pg, w, 5000)) for w in range(4)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(120)
            assert p.exitcode == 0
        assert pg.count("tasks", {"workflow_id": "mp"}) == 20_000
        assert pg.count("tasks") == 20_001

    def test_threads_share_a_store(self, pg):
        """Several threads upsert and read through one store, each on its own connection."""
        threads = [threading.Thread(target=_write_many, args=(pg, w, 1000)) for w in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert pg.count("tasks") == 4000

    def test_concurrent_schema_creation(self, pg_dsn):
        """Four processes creating the schema of an empty database at once all succeed."""
        with private_schema(pg_dsn) as dsn:
            ctx = multiprocessing.get_context("spawn")
            barrier = ctx.Barrier(4)
            procs = [ctx.Process(target=_fresh_schema_writer, args=(dsn, w, barrier)) for w in range(4)]
            for p in procs:
                p.start()
            for p in procs:
                p.join(120)
                assert p.exitcode == 0
            with PostgresStore(dsn) as store:
                assert store.count("tasks", {"workflow_id": "race"}) == 4

    def test_unreachable_server_names_host(self):
        """A server that does not answer raises StoreError naming host and port and the settings to check."""
        store = PostgresStore("postgresql://postgres@127.0.0.1:1/flowcept", connect_timeout=2)
        with pytest.raises(StoreError, match=r"127\.0\.0\.1:1/flowcept.*FLOWCEPT_POSTGRES_URI"):
            store.count("tasks")
        store.close()

    def test_reconnects_after_connection_loss(self, pg, pg_store_dsn):
        """A connection the server dropped is replaced on the next call, without an error."""
        pg.upsert([{"type": "task", "task_id": "a"}])
        pid = pg._conn().info.backend_pid
        with psycopg.connect(pg_store_dsn, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        time.sleep(0.2)
        assert pg.upsert([{"type": "task", "task_id": "b"}]) == 1
        assert pg._conn().info.backend_pid != pid
        assert pg.count("tasks") == 2

    def test_close_idempotent_and_context_manager(self, pg_store_dsn):
        """close() can be called twice; a closed store raises StoreError."""
        with PostgresStore(pg_store_dsn) as store:
            store.upsert([{"type": "task", "task_id": "c"}])
        store.close()
        with pytest.raises(StoreError, match="closed"):
            store.count("tasks")

    def test_make_store_from_settings(self, pg_store_dsn, monkeypatch):
        """databases.postgres.enabled (env overrides) makes a PostgresStore on the configured DSN."""
        from flowcept.settings import reload_settings
        from flowcept.store import make_store

        monkeypatch.setenv("FLOWCEPT_POSTGRES_ENABLED", "true")
        monkeypatch.setenv("FLOWCEPT_POSTGRES_URI", pg_store_dsn)
        monkeypatch.setenv("DB_FLUSH_MODE", "online")
        store = make_store(reload_settings())
        try:
            assert isinstance(store, PostgresStore)
            assert store.ping()
        finally:
            store.close()


@pytest.mark.slow
class TestThroughput:
    def test_upsert_100k(self, pg):
        """100,000 small tasks upsert in one call, new and then merged (reported; loose bound)."""
        recs = [{"type": "task", "task_id": f"t{i}", "workflow_id": "wf", "activity_id": f"a{i % 10}",
                 "status": "FINISHED", "started_at": 1.0 + i, "ended_at": 2.0 + i, "used": {"x": i}}
                for i in range(100_000)]
        start = time.perf_counter()
        assert pg.upsert(recs) == 100_000
        fresh = time.perf_counter() - start
        start = time.perf_counter()
        assert pg.upsert_encoded(EncodedBatch.from_docs(recs)) == 100_000
        merged = time.perf_counter() - start
        print(f"postgres upsert 100k: new {fresh:.3f}s, merged {merged:.3f}s", file=sys.stderr)
        assert pg.count("tasks", {"workflow_id": "wf"}) == 100_000
        assert fresh < 20 and merged < 40


class TestOutage:
    def test_outage_raises_then_recovers(self, pg, pg_store_dsn):
        """While the server is unreachable calls raise StoreError naming it; once back, the same store works."""
        from psycopg.conninfo import conninfo_to_dict, make_conninfo

        info = conninfo_to_dict(pg_store_dsn)
        proxy = TcpProxy((info.get("host") or "127.0.0.1", int(info.get("port") or 5432)))
        proxy.start()
        store = PostgresStore(make_conninfo(pg_store_dsn, host="127.0.0.1", port=str(proxy.port),
                                            connect_timeout="2"))
        try:
            assert store.upsert([{"type": "task", "task_id": "before", "status": "RUNNING"}]) == 1
            proxy.cut()
            for _ in range(2):
                with pytest.raises(StoreError, match=f"127.0.0.1:{proxy.port}.*unreachable"):
                    store.upsert([{"type": "task", "task_id": "during"}])
            proxy.start()
            assert store.upsert([{"type": "task", "task_id": "before", "status": "FINISHED"},
                                 {"type": "task", "task_id": "during"}]) == 2
            assert {d["task_id"]: d.get("status") for d in store.find("tasks")} == {"before": "FINISHED",
                                                                                    "during": None}
        finally:
            store.close()
            proxy.cut()
