"""The flusher's encoded batches: one encoding for every sink, and the SQLite store's two write paths.

A batch encoded by the flusher (``encode_batch``) knows its kinds, and, with one kind and string ids, its ids: the
SQLite store then binds the encoded records as they are (multi-row INSERT); any other batch (mixed kinds, ids that
are not strings, an array read from a stream) is split in SQLite (``json_each``). Both must store the same records.
"""

from __future__ import annotations

import orjson
import pytest

from flowcept.buffer import EncodedBatch, encode_batch
from flowcept.serialize import dumps, dumps_each
from flowcept.store.sqlite import SqliteStore


@pytest.fixture(name="store")
def fixture_store(tmp_path):
    store = SqliteStore(tmp_path / "e.sqlite")
    yield store
    store.close()


def _task(tid, **fields):
    return {"type": "task", "task_id": tid, "workflow_id": "w", **fields}


def test_lines_and_array_come_from_one_encoding():
    records = [_task("a", used={"s": "x},{y\nz"}), _task("b", used={"l": [{"k": 1}, {"k": 2}]}, stderr=None)]
    batch = encode_batch(records)
    assert batch.kinds == frozenset({"task"}) and batch.ids == ["a", "b"]
    lines = batch.lines()
    assert lines.endswith(b"\n") and lines.count(b"\n") == 2
    docs = [orjson.loads(line) for line in lines.splitlines()]
    assert docs == orjson.loads(batch.array()) == batch.docs
    assert docs[1] == {"type": "task", "task_id": "b", "workflow_id": "w", "used": {"l": [{"k": 1}, {"k": 2}]}}
    assert batch.blobs == lines.splitlines()


@pytest.mark.parametrize("records", [
    [],
    [_task("one", used={"s": ",\n,"})],
    [_task(f"t{i}", used={"s": ("a," + "\n" * 8 + ",b") * i, "n": i}) for i in range(5)],
    # A record that takes the slow path (a non-string key) among others: the batch is encoded record by record.
    [_task("a", used={1: "int"}), _task("b", used={"s": "\n"})],
    # A record holding an orjson.Fragment (written as it is) with the separator's text: record by record.
    [_task("a", used={"f": orjson.Fragment(b"[1," + b"\n" * 8 + b",2]")}), _task("b")],
], ids=["empty", "one", "separator-text", "slow-path", "fragment"])
def test_each_record_encoded_alone_whatever_its_text(records):
    """The batch is one encoder call with newlines between records, split there: strings holding newlines or the
    separator's text, one record, none, and records that need the slow path all come out one document each."""
    assert dumps_each(records) == [dumps(record) for record in records]


def test_jsonl_lines_leave_data_out_but_the_array_keeps_it():
    batch = encode_batch([_task("a", data="payload"), _task("b")])
    assert batch.has_data
    assert [orjson.loads(line) for line in batch.lines().splitlines()] == [_task("a"), _task("b")]
    assert orjson.loads(batch.array())[0]["data"] == "payload"


@pytest.mark.parametrize("ids_known", [True, False], ids=["bound rows", "json_each"])
def test_both_write_paths_store_the_same_records(store, ids_known):
    records = [_task("t1", status="RUNNING", used={"x": 1}), _task("t2", used={"x": 2}),
               _task("t1", status="FINISHED", generated={"y": 3})]  # one id twice in a batch: merged in order
    batch = encode_batch(records)
    if not ids_known:
        batch = EncodedBatch(batch.array(), batch.count)
    assert store.upsert_encoded(batch) == 3
    assert sorted(store.find("tasks", {"workflow_id": "w"}), key=lambda d: d["task_id"]) == [
        _task("t1", status="FINISHED", used={"x": 1}, generated={"y": 3}), _task("t2", used={"x": 2})]
    # a later batch merges into the stored records; a terminal status is kept
    store.upsert_encoded(encode_batch([_task("t1", status="RUNNING", generated={"z": 4})]))
    (t1,) = store.find("tasks", {"task_id": "t1"})
    assert t1["status"] == "FINISHED" and t1["generated"] == {"y": 3, "z": 4}


def test_ids_that_are_not_strings_take_the_split_path(store):
    batch = encode_batch([_task(7, used={"x": 1}), _task("s")])
    assert batch.ids is None
    assert store.upsert_encoded(batch) == 2
    assert store.count("tasks", {"task_id": 7}) == 1 and store.count("tasks", {"task_id": "s"}) == 1


def test_mixed_kinds_go_to_their_collections(store):
    batch = encode_batch([{"type": "workflow", "workflow_id": "w", "name": "n"}, _task("t")])
    assert batch.ids is None and batch.kinds == frozenset({"workflow", "task"})
    assert store.upsert_encoded(batch) == 2
    assert store.find("workflows", {"workflow_id": "w"}) == [{"type": "workflow", "workflow_id": "w", "name": "n"}]
    assert store.find("tasks", {}) == [_task("t")]


def test_bound_rows_refresh_lineage_links(store):
    from flowcept import Flowcept  # noqa: F401 - the query API reads links through the store
    batch = encode_batch([_task("up", generated={"sha256": "h1"}), _task("down", used={"sha256": "h1"}),
                          _task("dep", dependencies=["up"])])
    assert batch.ids == ["up", "down", "dep"]
    store.upsert_encoded(batch)
    links = sorted(store.run_sql([("SELECT task_id, kind, value FROM task_links", ())]))
    assert links == [("dep", "dep", "up"), ("down", "used", "h:h1"), ("up", "generated", "h:h1")]


def test_a_batch_larger_than_one_statement(store, monkeypatch):
    import flowcept.store.sqlite as sqlite_store

    monkeypatch.setattr(sqlite_store, "_rows_per_statement", lambda conn: 7)
    batch = encode_batch([_task(f"t{i}", used={"i": i}) for i in range(50)])
    assert store.upsert_encoded(batch) == 50
    assert store.count("tasks", {"workflow_id": "w"}) == 50
    assert store.find("tasks", {"task_id": "t49"}) == [_task("t49", used={"i": 49})]


def test_an_unhashable_type_is_kept_out_of_the_kinds(store):
    batch = encode_batch([{"type": ["task"], "task_id": "x"}, _task("t")])
    assert batch.kinds is None and batch.ids is None
    assert store.upsert_encoded(batch) == 1
    assert store.find("tasks", {}) == [_task("t")]
