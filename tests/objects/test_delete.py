"""Deleting objects on both stores: every version goes, content goes only when nothing names it any more (also while
other threads save the same bytes), arguments are checked, lineage between tasks stays, workflows take their
objects along."""

from __future__ import annotations

import hashlib
import os
import queue
import threading

import pytest

from flowcept import Flowcept, flowcept_task
from flowcept.errors import ObjectNotFoundError, QueryError

pytestmark = pytest.mark.timeout(120)

BIG = 300 * 1024  # above the inline limit (256 KiB): stored in the blob area


def _inline_count(db) -> int:
    """Rows of inline content (object_data)."""
    with db.object_store._reading() as ex:
        return ex("SELECT count(*) FROM object_data", ()).fetchone()[0]


def _ids(db, collection: str = "objects") -> list[str]:
    return sorted(d["object_id"] for d in db.query({}, collection=collection))


class TestDeleteObjectKeys:
    def test_every_version_and_unshared_content_go(self, db):
        """Deleting by object_id removes all versions and the inline and blob content only they named."""
        big = os.urandom(BIG)
        for v in (b"v0", b"v1", b"v2"):
            db.insert_or_update_object(v, object_id="small", control_version=True)
        db.insert_or_update_object(big, object_id="large")
        db.insert_or_update_object(big + b"1", object_id="large", control_version=True)
        db.insert_or_update_object(b"other", object_id="other")
        assert (db.object_store.blob_count(), _inline_count(db)) == (2, 4)

        assert db.delete_object_keys("object_id", ["small", "large", "never-stored"]) == 2

        assert _ids(db) == ["other"] and _ids(db, "object_history") == ["other"]
        assert (db.object_store.blob_count(), _inline_count(db)) == (0, 1)
        for oid in ("small", "large"):
            with pytest.raises(ObjectNotFoundError, match=f"object '{oid}' not found"):
                db.get_blob_object(oid)
            with pytest.raises(ObjectNotFoundError):
                db.get_object_history(oid)
        assert db.get_blob_object("other").data == b"other"

    def test_shared_content_stays_while_named(self, db):
        """Identical bytes are stored once; they stay until the last object or version naming them is deleted."""
        big = os.urandom(BIG)
        for oid in ("a", "b"):
            db.insert_or_update_object(big, object_id=oid)
            db.insert_or_update_object(b"tiny", object_id=f"{oid}-small")
        db.insert_or_update_object(big, object_id="c")
        db.insert_or_update_object(b"newer", object_id="c", control_version=True)  # version 0 still names big
        assert (db.object_store.blob_count(), _inline_count(db)) == (1, 2)

        assert db.delete_object_keys("object_id", ("a", "a-small")) == 2
        assert (db.object_store.blob_count(), _inline_count(db)) == (1, 2)
        assert db.get_blob_object("b").data == big and db.get_blob_object("b-small").data == b"tiny"
        assert db.delete_object_keys("object_id", {"b", "b-small"}) == 2
        assert (db.object_store.blob_count(), _inline_count(db)) == (1, 1)  # c's version 0 names big
        assert db.get_blob_object("c", version=0).data == big
        assert db.delete_object_keys("object_id", ["c"]) == 1
        assert (db.object_store.blob_count(), _inline_count(db)) == (0, 0)

    def test_metadata_keys_match_the_latest_version(self, db):
        """task_id, workflow_id, object_type, campaign_id and data_sha256 select objects by their latest version."""
        db.insert_or_update_object(b"1", object_id="m1", task_id="t1", workflow_id="w1", object_type="ml_model")
        db.insert_or_update_object(b"2", object_id="m2", task_id="t1", workflow_id="w2", object_type="dataset")
        db.insert_or_update_object(b"3", object_id="m3", task_id="t0", workflow_id="w2", object_type="dataset")
        db.update_object_metadata("m3", task_id="t2")  # a new version: t0 is no longer its task
        db.insert_or_update_object(b"4", object_id="m4", workflow_id="w3")
        db.insert_or_update_object(b"5", object_id="m5", object_type="artifact")
        db.insert_or_update_object(b"6", object_id="m6", object_type="artifact")

        assert db.delete_object_keys("task_id", ["t0"]) == 0
        assert db.delete_object_keys("task_id", ["t1"]) == 2
        assert _ids(db) == ["m3", "m4", "m5", "m6"]
        assert db.delete_object_keys("workflow_id", ["w2", "w3"]) == 2
        assert db.delete_object_keys("data_sha256", [hashlib.sha256(b"5").hexdigest()]) == 1
        assert db.delete_object_keys("object_type", ["artifact"]) == 1
        assert _ids(db) == [] and _ids(db, "object_history") == []

    def test_campaign_id(self, db):
        """An object saved in a running campaign's workflow carries its campaign_id and is deleted by it; one saved
        for an explicit workflow_id does not carry it."""
        with Flowcept(campaign_id="camp-1", workflow_name="w") as fc:
            db.insert_or_update_object(b"in-campaign", object_id="in")
            db.insert_or_update_object(b"elsewhere", object_id="out", workflow_id="w-other")
        blob = db.get_blob_object("in")
        assert (blob.workflow_id, blob.campaign_id) == (fc.current_workflow_id, "camp-1")
        assert db.delete_object_keys("campaign_id", ["camp-1"]) == 1
        assert _ids(db) == ["out"]

    def test_arguments_are_checked(self, db):
        """A key outside the metadata fields, or keys that are not a list of strings and numbers, is a QueryError."""
        db.insert_or_update_object(b"x", object_id="x")
        with pytest.raises(QueryError, match="cannot delete objects by 'custom_metadata': key_name must be one of "
                                             "object_id, task_id, workflow_id, campaign_id, object_type, "
                                             "data_sha256"):
            db.delete_object_keys("custom_metadata", ["x"])
        with pytest.raises(QueryError, match=r"keys_list must be a list, tuple or set of object_id values "
                                             r"\(e.g. \['abc'\], not 'abc'\), got str"):
            db.delete_object_keys("object_id", "x")
        with pytest.raises(QueryError, match=r"keys_list must hold strings or numbers \(the object_id values to "
                                             r"delete\), got \{'\$ne': None\} \(dict\)"):
            db.delete_object_keys("object_id", [{"$ne": None}])
        with pytest.raises(QueryError, match=r"got True \(bool\)"):
            db.delete_object_keys("object_id", [True])
        assert db.delete_object_keys("object_id", []) == 0
        assert _ids(db) == ["x"]


class TestConcurrentSaves:
    def test_a_save_that_found_its_content_stored_keeps_it(self, db, kind):
        """The race itself, step by step: a save finds its bytes stored, a delete of the only object naming them
        runs before the save publishes; the save's object still reads back (SQLite: the delete ran and the save
        restored the file; PostgreSQL: the delete waited for the save to commit)."""
        store = db.object_store
        data = os.urandom(BIG)
        db.insert_or_update_object(data, object_id="old")
        deleted: list[int] = []
        deleter = threading.Thread(target=lambda: deleted.append(db.delete_object_keys("object_id", ["old"])))
        # What put() does, with the delete slipped in between its content check and its publication.
        with store._saving():
            blob = store._write_blob(iter([data]))
            deleter.start()
            deleter.join(1.0 if kind == "postgres" else 30)
            assert deleter.is_alive() is (kind == "postgres")
            if kind == "sqlite":
                assert not store.blob_path(blob.sha256).exists()  # the delete removed the only stored copy
            content = {"object_size_bytes": blob.size, "data_sha256": blob.sha256, "data_hash_algo": "sha256",
                       "storage_type": blob.storage_type, "pickle": False}
            store._publish("new", {}, content, False, None, blob=blob)
        if blob.spare is not None:
            os.unlink(blob.spare)
        deleter.join(30)
        assert deleted == [1]
        assert _ids(db) == ["new"] and db.get_blob_object("new").data == data
        assert store.blob_count() == 1

    @pytest.mark.parametrize("size", [100, BIG], ids=["inline", "blob"])
    def test_threads_saving_and_deleting_the_same_bytes(self, db, size):
        """One thread saves 40 objects with identical bytes while another deletes each as soon as it appears;
        whatever the interleaving, every object left reads back and its content is stored exactly once."""
        data = os.urandom(size)
        saved: queue.Queue = queue.Queue()
        errors: list[BaseException] = []

        def save() -> None:
            try:
                for i in range(40):
                    saved.put(db.insert_or_update_object(data, object_id=f"o{i}"))
            except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
                errors.append(exc)
            finally:
                saved.put(None)

        def delete() -> None:
            try:
                n = 0
                while (oid := saved.get(timeout=60)) is not None:
                    n += 1
                    if n % 3:  # keep every third object
                        assert db.delete_object_keys("object_id", [oid]) == 1
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)

        threads = [threading.Thread(target=save), threading.Thread(target=delete)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(90)
        assert errors == []
        kept = [f"o{i}" for i in range(40) if (i + 1) % 3 == 0]
        assert _ids(db) == sorted(kept)
        assert all(db.get_blob_object(oid).data == data for oid in kept)
        assert (db.object_store.blob_count(), _inline_count(db)) == ((1, 0) if size == BIG else (0, 1))
        assert db.delete_object_keys("object_id", kept) == len(kept)
        assert (db.object_store.blob_count(), _inline_count(db)) == (0, 0)


class TestWithRecords:
    def test_lineage_between_tasks_survives(self, db):
        """Tasks keep their references to a deleted object; the lineage queries still link producer and
        consumer; loading the object raises ObjectNotFoundError."""

        @flowcept_task
        def produce():
            return {"oid": Flowcept.insert_or_update_object(b"payload", object_id="data")}

        @flowcept_task
        def consume(name):
            return {"size": len(Flowcept.db.get_blob_object(name).data)}

        with Flowcept(workflow_name="lineage") as fc:
            produce()
            consume("data")
        wf = fc.current_workflow_id
        tasks = {t["activity_id"]: t for t in db.task_query({"workflow_id": wf})}
        edges = db.lineage_edges(wf)
        assert (tasks["produce"]["task_id"], tasks["consume"]["task_id"], "data") in edges
        assert db.delete_object_keys("object_id", ["data"]) == 1
        ref = {"object_id": "data", "version": 0, "data_sha256": hashlib.sha256(b"payload").hexdigest()}
        after = {t["activity_id"]: t for t in db.task_query({"workflow_id": wf})}
        assert after["produce"]["generated"]["object:data"] == ref
        assert after["consume"]["used"]["object:data"] == ref
        assert db.lineage_edges(wf) == edges
        assert [t["task_id"] for t in db.upstream(tasks["consume"]["task_id"])] == [tasks["produce"]["task_id"]]
        with pytest.raises(ObjectNotFoundError, match="object 'data' not found"):
            db.get_blob_object("data")

    def test_delete_workflow_data_takes_its_objects(self, db):
        """delete_workflow_data deletes the workflow's objects (every version) with its records."""
        db.store.upsert([{"type": "workflow", "workflow_id": "w1"}, {"type": "workflow", "workflow_id": "w2"},
                         {"type": "task", "task_id": "t1", "workflow_id": "w1"}])
        db.insert_or_update_object(os.urandom(BIG), object_id="model", workflow_id="w1")
        db.insert_or_update_object(b"2", object_id="model", workflow_id="w1", control_version=True)
        db.insert_or_update_object(b"kept", object_id="kept", workflow_id="w2")
        assert db.delete_workflow_data("w1") == {"objects": 1, "tasks": 1, "agents": 0, "workflows": 1}
        assert _ids(db, "object_history") == ["kept"] and db.object_store.blob_count() == 0
        assert db.delete_workflow_data("unknown") == {"objects": 0, "tasks": 0, "agents": 0, "workflows": 0}

    def test_delete_campaign_data_takes_its_objects(self, db):
        """delete_campaign_data deletes the objects of the campaign's workflows and those carrying its id."""
        db.store.upsert([{"type": "workflow", "workflow_id": "w1", "campaign_id": "c1"},
                         {"type": "workflow", "workflow_id": "w2", "campaign_id": "c2"}])
        db.insert_or_update_object(b"a", object_id="a", workflow_id="w1")
        db.insert_or_update_object(b"b", object_id="b", workflow_id="w2")
        with Flowcept(campaign_id="c1", workflow_name="run"):
            db.insert_or_update_object(b"c", object_id="c")
        assert db.delete_campaign_data("c1") == {"objects": 2, "tasks": 0, "agents": 0, "workflows": 2}
        assert _ids(db) == ["b"]
