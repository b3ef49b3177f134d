"""The redis transport against the real Redis: entries, spill when the broker is away, errors at the seam."""

from __future__ import annotations

import logging

import orjson
import pytest

from flowcept.buffer import EncodedBatch
from flowcept.errors import TransportError

from .redis_env import cleanup_stream, redis_client, redis_settings

pytestmark = pytest.mark.redis


@pytest.fixture(name="env")
def fixture_env(tmp_path, monkeypatch):
    env = redis_settings(tmp_path, monkeypatch, deadline=0.3)
    yield env
    cleanup_stream(env["stream"])


def _transport():
    from flowcept.settings import get_settings
    from flowcept.transport import make_transport

    return make_transport(get_settings())


def _batch(n: int, start: int = 0) -> EncodedBatch:
    return EncodedBatch.from_docs([{"type": "task", "task_id": f"t{i}", "status": "FINISHED", "used": {"x": i}}
                                   for i in range(start, start + n)])


class TestRedisStreamTransport:
    def test_one_entry_per_batch_with_producer_and_sequence(self, env):
        """Each batch is one stream entry holding the JSON array, the producer id, a sequence and the count."""
        transport = _transport()
        with transport:
            assert transport.write(_batch(3)) == 0
            assert transport.write(_batch(2, 3)) == 0
            assert transport.flush() is True
        entries = redis_client().xrange(env["stream"])
        assert len(entries) == 2
        first = entries[0][1]
        assert orjson.loads(first[b"b"]) == _batch(3).docs
        assert first[b"p"].decode() == transport.producer_id
        assert [int(e[1][b"s"]) for e in entries] == [1, 2]
        assert [int(e[1][b"n"]) for e in entries] == [3, 2]
        assert transport.sent == 5 and transport.spilled == 0

    def test_unreachable_broker_spills_to_jsonl_with_a_warning(self, env, monkeypatch, caplog):
        """Past the reconnect deadline, batches go to the spill file, one record per line, and a warning names it."""
        from flowcept.settings import get_settings
        from flowcept.transport.redis_streams import RedisStreamTransport

        mq = get_settings().mq
        dead = type(mq)(**{**{f: getattr(mq, f) for f in mq.__dataclass_fields__}, "port": 1})
        transport = RedisStreamTransport(dead)
        caplog.set_level(logging.WARNING, logger="flowcept")
        with transport:
            assert transport.write(_batch(4)) == 0
            assert transport.write(_batch(3, 4)) == 0
            assert transport.flush() is False
        assert transport.spill_path.startswith(env["spill"][:-len(".jsonl")] + "_")
        lines = open(transport.spill_path, "rb").read().splitlines()
        assert [orjson.loads(line) for line in lines] == _batch(7).docs
        assert transport.spilled == 7
        assert transport.spill_path in caplog.text

    def test_spill_file_ingests_idempotently(self, env, tmp_path):
        """ingest_file loads a spill file into the store; loading it twice changes nothing."""
        from flowcept.keeper import ingest_file
        from flowcept.store.sqlite import SqliteStore

        path = tmp_path / "s.jsonl"
        path.write_bytes(b"\n".join(_batch(10).blobs) + b"\n{broken\n\n")
        store = SqliteStore(env["db"])
        seen = []
        assert ingest_file(str(path), store, batch_size=4, progress=seen.append) == 10
        assert seen == [4, 8, 10]
        assert ingest_file(str(path), store) == 10
        assert store.count("tasks") == 10
        assert store.find("tasks", {"task_id": "t7"})[0]["used"] == {"x": 7}
        store.close()

    def test_redis_errors_become_transport_errors(self):
        """A redis-py error raised at the seam surfaces as TransportError, chained to the original."""
        import redis

        from flowcept.transport.redis_streams import redis_errors

        with pytest.raises(TransportError) as info:
            with redis_errors("testing"):
                raise redis.exceptions.ResponseError("boom")
        assert isinstance(info.value.__cause__, redis.exceptions.ResponseError)

    def test_workflow_registry_tracks_producers(self, env):
        """A producer notes itself running for a workflow, then flushed with its last entry id."""
        from flowcept.transport.redis_streams import producers_key

        transport = _transport()
        with transport:
            transport.register_workflow("wf1")
            transport.write(_batch(1))
            transport.mark_flushed("wf1")
        state = redis_client().hgetall(producers_key(env["stream"], "wf1"))
        assert state == {transport.producer_id.encode(): f"flushed {transport.last_id}".encode()}


def test_ingest_infers_missing_types(tmp_path):
    """Lines without a `type` (written by other tools) are typed as the stores infer it, and stored."""
    from flowcept.keeper import ingest_file
    from flowcept.store.sqlite import SqliteStore

    path = tmp_path / "untyped.jsonl"
    path.write_bytes(b'{"task_id": "u1", "used": {"x": 1}}\n{"workflow_id": "w1", "name": "n"}\n{"neither": 1}\n')
    store = SqliteStore(tmp_path / "s.sqlite")
    assert ingest_file(str(path), store) == 2
    assert store.find("tasks", {"task_id": "u1"})[0]["type"] == "task"
    assert store.find("workflows", {"workflow_id": "w1"})[0]["name"] == "n"
    store.close()


def test_retained_copies_probe_the_oldest_copy_even_on_disk(tmp_path, monkeypatch):
    """When every older copy moved to disk, the probe for a lost stream is still the oldest copy (not the newest,
    which a restarted server may already hold again), and pruning below the keepers' position drops them."""
    from flowcept.transport.redis import retained

    monkeypatch.setattr(retained, "RETAIN_MAX_BYTES", 100)
    copies = retained.RetainedCopies(str(tmp_path / "spill"))
    for i in range(1, 4):
        copies.add(f"100-{i}", b"[" + b"1," * 30 + b"1]", 31)
    assert copies.oldest_id() == "100-1"
    assert copies.unconfirmed(None) == 93
    copies.prune((100, 3))
    assert copies.oldest_id() == "100-3" and copies.unconfirmed(None) == 31
    segments, items = copies.take()
    assert [n for _, n in copies.batches(segments, items)] == [31]
    copies.close()
