"""The keeper on Redis specifics: claims of a dead keeper's entries, stop events, merges across entries (the broker-
independent contract is tests/transport/test_contract.py)."""

from __future__ import annotations

import threading

import pytest

from flowcept import Flowcept, flowcept_task
from tests.transport.redis_env import cleanup_stream, make_store, redis_client, redis_settings, wait_for

pytestmark = pytest.mark.redis


@flowcept_task
def double(x):
    return 2 * x


@pytest.fixture(name="env")
def fixture_env(tmp_path, monkeypatch):
    env = redis_settings(tmp_path, monkeypatch)
    yield env
    cleanup_stream(env["stream"])


def _produce(n: int, **kwargs) -> str:
    with Flowcept(start_persistence=False, **kwargs) as f:
        for i in range(n):
            double(i)
    return f.workflow_id


class TestKeeper:
    def test_pending_entries_of_a_dead_keeper_are_claimed(self, env):
        """Entries a keeper read but never acknowledged are claimed by another after the idle threshold."""
        from flowcept.keeper import Keeper
        from flowcept.settings import get_settings
        from flowcept.transport.redis_streams import DEFAULT_GROUP

        client = redis_client()
        client.xgroup_create(env["stream"], DEFAULT_GROUP, id="0", mkstream=True)
        wf = _produce(3000)
        taken = client.xreadgroup(DEFAULT_GROUP, "dead-keeper", {env["stream"]: ">"}, count=1000)
        assert taken and taken[0][1]
        keeper = Keeper(get_settings(), claim_idle_secs=0.3).start()
        store = make_store(env)
        try:
            wait_for(lambda: store.count("tasks", {"workflow_id": wf}) == 3000, 30, "claimed tasks")
            wait_for(lambda: client.xpending(env["stream"], DEFAULT_GROUP)["pending"] == 0, 10, "no pending")
            assert keeper.stats.claimed == len(taken[0][1])
        finally:
            keeper.close()
            store.close()

    def test_run_keeper_stops_on_event(self, env):
        """run_keeper returns once its stop event is set, with the records it stored counted."""
        from flowcept.keeper import run_keeper

        wf = _produce(1000)
        stop = threading.Event()
        result = {}
        thread = threading.Thread(target=lambda: result.update(stats=run_keeper(stop_event=stop)))
        thread.start()
        store = make_store(env)
        wait_for(lambda: store.count("tasks", {"workflow_id": wf}) == 1000, 30, "1000 tasks")
        stop.set()
        thread.join(10)
        assert not thread.is_alive()
        assert result["stats"].records == 1002
        store.close()

    def test_keeper_needs_the_message_queue(self, tmp_path, monkeypatch):
        """run_keeper without mq.enabled is a ConfigError naming the key."""
        from flowcept.errors import ConfigError
        from flowcept.keeper import run_keeper
        from tests.conftest import write_settings

        write_settings(tmp_path, "mq:\n  enabled: false\n", monkeypatch)
        with pytest.raises(ConfigError, match="mq.enabled"):
            run_keeper()


@pytest.mark.postgres
def test_keeper_to_postgres_merges_repeated_ids_across_entries(env, pg_dsn):
    """Entries read together are one batch: ids repeated across them (new and stored ones) merge in stream order,
    a stored terminal status survives a later RUNNING, and redelivering the entries changes nothing."""
    import orjson

    pytest.importorskip("psycopg")
    from flowcept.keeper import Keeper
    from flowcept.store.merge import coalesce, merge_record
    from flowcept.settings import get_settings
    from flowcept.store.postgres import PostgresStore
    from flowcept.transport.redis_streams import DEFAULT_GROUP
    from tests.store._pg import private_schema

    client = redis_client()
    entries = [
        [{"type": "task", "task_id": "a", "status": "RUNNING", "used": {"x": 1}},
         {"type": "task", "task_id": "s", "status": "RUNNING", "used": {"p": 1}}],
        [{"type": "task", "task_id": "a", "status": "FINISHED", "generated": {"y": 2}},
         {"type": "task", "task_id": "c", "status": "FINISHED"}],
        [{"type": "task", "task_id": "a", "status": "RUNNING", "used": {"z": 3}},
         {"type": "workflow", "workflow_id": "w", "status": "RUNNING"}],
    ]
    stored = {"type": "task", "task_id": "s", "status": "ERROR", "used": {"o": 0}}
    with private_schema(pg_dsn) as dsn:
        store = PostgresStore(dsn)
        store.upsert([stored])
        for recs in entries:
            client.xadd(env["stream"], {"b": orjson.dumps(recs), "e": "json", "n": len(recs)})
        keeper = Keeper(get_settings(), store=store, read_count=8).start()
        try:
            wait_for(lambda: keeper.stats.entries >= 3, 30, "3 entries")
            expected = {"a": coalesce([entries[0][0], entries[1][0], entries[2][0]])[0],
                        "s": merge_record(stored, entries[0][1]), "c": entries[1][1]}
            assert expected["a"]["status"] == "FINISHED" and expected["s"]["status"] == "ERROR"
            assert {d["task_id"]: d for d in store.find("tasks")} == expected
            # A later entry (fast path, one record per id) keeps the terminal status too.
            client.xadd(env["stream"], {"b": orjson.dumps([{"type": "task", "task_id": "a", "status": "RUNNING"}]),
                                        "e": "json", "n": 1})
            wait_for(lambda: keeper.stats.entries >= 4, 30, "4 entries")
            assert store.find("tasks", {"task_id": "a"}) == [expected["a"]]
            assert client.xpending(env["stream"], DEFAULT_GROUP)["pending"] == 0
        finally:
            keeper.stop()
        # Redelivery: the same entries written again give the same rows.
        again = Keeper(get_settings(), store=PostgresStore(dsn), read_count=8)
        for recs in entries:
            again._commit([orjson.dumps(recs)[1:-1]], [], len(recs))
        assert {d["task_id"]: d for d in store.find("tasks")} == expected
        assert store.count("workflows") == 1
        again.store.close()
        store.close()
