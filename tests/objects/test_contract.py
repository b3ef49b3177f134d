"""The object contract on both stores: save, update with and without versions, history, fingerprints, equality,
sources, errors, checked reads, deduplication, queries and lineage."""

from __future__ import annotations

import hashlib
import io
import os
import pathlib

import pytest

from flowcept import BlobObject, Flowcept, flowcept_task
from flowcept.errors import FlowceptError, ObjectIntegrityError, ObjectNotFoundError, QueryError

from .conftest import corrupt

MIB = 1024 * 1024
BLOB_KIND = {"sqlite": "file", "postgres": "chunks"}


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class TestSave:
    def test_small_object_saved_inline_with_reference_fields(self, db):
        """A small payload is stored inline and its metadata has exactly the reference's fields."""
        oid = db.insert_or_update_object(b"hello", object_id="greeting", task_id="t1", workflow_id="w1",
                                         object_type="artifact", custom_metadata={"lang": "en"}, tags=["a", "b"])
        assert oid == "greeting"
        blob = db.get_blob_object("greeting")
        assert isinstance(blob, BlobObject)
        assert blob.data == b"hello"
        doc = blob.to_dict()
        created = doc.pop("created_at")
        assert doc.pop("updated_at") == created
        assert doc == {"object_id": "greeting", "task_id": "t1", "workflow_id": "w1", "object_type": "artifact",
                       "custom_metadata": {"lang": "en"}, "tags": ["a", "b"], "version": 0,
                       "object_size_bytes": 5, "data_sha256": _sha(b"hello"), "data_hash_algo": "sha256",
                       "storage_type": "in_object", "pickle": False, "data": b"hello", "type": "object"}

    def test_large_object_goes_to_the_blob_area(self, db, kind):
        """Content above the inline limit is stored in the blob area and read back byte for byte."""
        data = os.urandom(3 * MIB + 17)
        oid = db.insert_or_update_object(data)
        assert db.get_blob_fingerprint(oid) == {"object_id": oid, "version": 0, "object_size_bytes": len(data),
                                                "data_sha256": _sha(data), "data_hash_algo": "sha256",
                                                "storage_type": BLOB_KIND[kind]}
        assert db.get_blob_object(oid).data == data
        assert db.object_store.blob_count() == 1

    def test_save_data_in_collection_keeps_a_mid_size_payload_inline(self, db):
        """save_data_in_collection=True stores a 1 MiB payload inline."""
        oid = db.insert_or_update_object(b"x" * MIB, save_data_in_collection=True)
        assert db.get_blob_fingerprint(oid)["storage_type"] == "in_object"
        assert db.object_store.blob_count() == 0
        assert db.get_blob_object(oid).data == b"x" * MIB

    def test_sources_path_file_object_bytearray_and_pickle(self, db, tmp_path):
        """Paths and file objects are streamed, bytearrays stored, pickled objects unpickled on load."""
        data = os.urandom(MIB)
        path = tmp_path / "weights.bin"
        path.write_bytes(data)
        assert db.get_blob_object(db.insert_or_update_object(path)).data == data
        assert db.get_blob_object(db.insert_or_update_object(io.BytesIO(data))).data == data
        assert db.get_blob_object(db.insert_or_update_object(bytearray(b"ab"))).data == b"ab"
        oid = db.insert_or_update_object({"k": [1, 2.5, None]}, pickle=True)
        blob = db.get_blob_object(oid)
        assert blob.data == {"k": [1, 2.5, None]} and blob.pickle is True

    def test_unstorable_input_is_refused(self, db):
        """A str, or a Python object without pickle=True, is a TypeError that says what to pass."""
        with pytest.raises(TypeError, match="pathlib.Path"):
            db.insert_or_update_object("model.pt")
        with pytest.raises(TypeError, match="pickle=True"):
            db.insert_or_update_object({"a": 1})
        with pytest.raises(TypeError, match="binary mode"):
            db.insert_or_update_object(io.StringIO("text"))
        assert db.blob_object_query({}) == []

    def test_typed_helpers_and_their_queries(self, db):
        """ml_model and dataset helpers set object_type; their queries return only that type."""
        db.insert_or_update_ml_model(b"m", object_id="m1", tags=["prod"])
        db.insert_or_update_dataset(b"d", object_id="d1")
        db.save_or_update_object(b"o", object_id="o1", object_type="artifact")
        assert [d["object_id"] for d in db.ml_model_query()] == ["m1"]
        assert [d["object_id"] for d in db.dataset_query({})] == ["d1"]
        assert [d["object_id"] for d in db.blob_object_query({"tags": "prod"})] == ["m1"]
        got = db.blob_object_query({"object_type": {"$in": ["dataset", "artifact"]}}, projection=["object_id"],
                                   sort=[("object_id", -1)])
        assert got == [{"object_id": "o1"}, {"object_id": "d1"}]
        assert [d["object_id"] for d in db.blob_object_query({"object_id": {"$regex": "^[md]1$"}},
                                                             sort=[("object_id", 1)], limit=1)] == ["d1"]
        with pytest.raises(QueryError):
            db.blob_object_query({"object_type": {"$bogus": 1}})

    def test_reference_query_collections(self, db):
        """query(collection="objects" | "object_history") reads latest versions or every version."""
        db.insert_or_update_object(b"a", object_id="o", object_type="artifact", control_version=True)
        db.insert_or_update_object(b"b", object_id="o", control_version=True)
        assert [d["version"] for d in db.query({"object_id": "o"}, collection="objects")] == [1]
        got = db.query({"object_type": "artifact"}, projection=["version"], sort=[("version", -1)],
                       collection="object_history")
        assert got == [{"version": 1}, {"version": 0}]
        with pytest.raises(QueryError, match="aggregation"):
            db.query({}, aggregation=[("count", "*")], collection="objects")

    def test_flowcept_static_helpers(self, db):
        """The reference's Flowcept.insert_or_update_* helpers store through Flowcept.db."""
        Flowcept.insert_or_update_object(b"x", object_id="s1")
        Flowcept.insert_or_update_ml_model(b"y", object_id="s2")
        Flowcept.insert_or_update_dataset(b"z", object_id="s3")
        got = {d["object_id"]: d.get("object_type") for d in db.blob_object_query()}
        assert got == {"s1": None, "s2": "ml_model", "s3": "dataset"}


class TestVersions:
    def test_update_without_version_control_replaces_in_place(self, db):
        """Without control_version the content and given fields are replaced; the version stays 0."""
        db.insert_or_update_object(b"one", object_id="o", object_type="artifact", tags=["x"])
        db.insert_or_update_object(b"two", object_id="o", tags=["y"])
        blob = db.get_blob_object("o")
        assert (blob.data, blob.version, blob.object_type, blob.tags, blob.prev_version) == (
            b"two", 0, "artifact", ["y"], None)
        history = db.get_object_history("o")
        assert [(h["version"], h["data_sha256"], h["source"]) for h in history] == [
            (0, _sha(b"two"), "objects_snapshot")]

    def test_update_with_version_control_keeps_every_version(self, db):
        """Each controlled update adds a version; history lists them newest first; any version loads."""
        contents = [os.urandom(400_000), b"small", os.urandom(2 * MIB)]
        for i, data in enumerate(contents):
            db.insert_or_update_object(data, object_id="model", control_version=True, custom_metadata={"i": i})
        history = db.get_object_history("model")
        assert [(h["version"], h.get("prev_version"), h["custom_metadata"]) for h in history] == [
            (2, 1, {"i": 2}), (1, 0, {"i": 1}), (0, None, {"i": 0})]
        assert len({h["created_at"] for h in history}) == 1
        assert db.list_object_versions("model") == history
        for version, data in enumerate(contents):
            assert db.get_blob_object("model", version).data == data
            assert db.get_blob_fingerprint("model", version)["data_sha256"] == _sha(data)
        assert db.get_blob_object("model").version == 2
        assert [d["version"] for d in db.blob_object_query({"object_id": "model"})] == [2]

    def test_uncontrolled_update_after_versions_replaces_only_the_latest(self, db):
        """A plain update after controlled ones rewrites the latest version and leaves older ones."""
        db.insert_or_update_object(b"v0", object_id="o", control_version=True)
        db.insert_or_update_object(b"v1", object_id="o", control_version=True)
        db.insert_or_update_object(b"v1-fixed", object_id="o")
        assert [(h["version"], h.get("prev_version")) for h in db.get_object_history("o")] == [(1, 0), (0, None)]
        assert db.get_blob_object("o", 0).data == b"v0"
        assert db.get_blob_object("o", 1).data == b"v1-fixed"

    def test_update_object_metadata(self, db):
        """Metadata updates keep the content; by default they add a version; custom_metadata merges."""
        db.insert_or_update_object(b"data", object_id="o", custom_metadata={"a": 1, "b": 2}, tags=["t"])
        db.update_object_metadata("o", custom_metadata={"b": 3, "c": 4}, object_type="dataset")
        blob = db.get_blob_object("o")
        assert (blob.version, blob.prev_version, blob.data, blob.custom_metadata, blob.tags, blob.object_type) == (
            1, 0, b"data", {"a": 1, "b": 3, "c": 4}, ["t"], "dataset")
        assert db.get_blob_object("o", 0).custom_metadata == {"a": 1, "b": 2}
        db.update_object_metadata("o", tags=["u"], control_version=False)
        assert [(h["version"], h["tags"]) for h in db.get_object_history("o")] == [(1, ["u"]), (0, ["t"])]
        with pytest.raises(ObjectNotFoundError, match="'nope' not found"):
            db.update_object_metadata("nope", tags=["x"])


class TestFingerprints:
    def test_fingerprint_and_equality_across_objects_and_versions(self, db):
        """Equality compares content by sha256 and size, across objects and versions."""
        same = os.urandom(MIB)
        db.insert_or_update_object(same, object_id="a")
        db.insert_or_update_object(same, object_id="b", control_version=True)
        db.insert_or_update_object(b"other", object_id="b", control_version=True)
        assert db.blob_objects_equal("a", "b", version_b=0) is True
        assert db.blob_objects_equal("a", "b") is False
        assert db.blob_objects_equal("b", "b", version_a=0, version_b=1) is False
        assert db.get_blob_fingerprint("b", 0)["data_sha256"] == db.get_blob_fingerprint("a")["data_sha256"]

    def test_identical_content_is_stored_once(self, db):
        """Objects and versions with identical bytes share one blob."""
        data = os.urandom(2 * MIB)
        for oid in ("x", "y", "z"):
            db.insert_or_update_object(data, object_id=oid)
        db.insert_or_update_object(data, object_id="x", control_version=True)
        assert db.object_store.blob_count() == 1
        db.insert_or_update_object(data + b"!", object_id="w")
        assert db.object_store.blob_count() == 2
        assert all(db.get_blob_object(oid).data == data for oid in ("x", "y", "z"))


class TestConcurrency:
    def test_concurrent_versioned_saves_get_distinct_versions(self, db):
        """Threads saving versions of one object at once each get their own version number; none is lost."""
        import threading

        def save(n: int) -> None:
            for i in range(5):
                db.insert_or_update_object(f"{n}-{i}".encode(), object_id="shared", control_version=True)

        threads = [threading.Thread(target=save, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        history = db.get_object_history("shared")
        assert [h["version"] for h in history] == list(range(19, -1, -1))
        contents = {db.get_blob_object("shared", h["version"]).data for h in history}
        assert contents == {f"{n}-{i}".encode() for n in range(4) for i in range(5)}


class TestErrors:
    def test_missing_object_and_version_are_named(self, db):
        """A missing object or version raises ObjectNotFoundError naming it (and the stored versions)."""
        db.insert_or_update_object(b"a", object_id="o", control_version=True)
        db.insert_or_update_object(b"b", object_id="o", control_version=True)
        with pytest.raises(ObjectNotFoundError, match=r"object 'ghost' not found") as err:
            db.get_blob_object("ghost")
        assert isinstance(err.value, FlowceptError) and isinstance(err.value, LookupError)
        with pytest.raises(ObjectNotFoundError, match=r"object 'o' has no version 5 \(stored versions: 0, 1\)"):
            db.get_blob_object("o", version=5)
        for call in (lambda: db.get_object_history("ghost"), lambda: db.get_blob_fingerprint("ghost"),
                     lambda: db.download_object("ghost", "out.bin")):
            with pytest.raises(ObjectNotFoundError, match="ghost"):
                call()

    @pytest.mark.parametrize("size", [100, 3 * MIB])
    def test_checksum_mismatch_is_an_error_never_wrong_bytes(self, db, tmp_path, size):
        """Corrupted content raises ObjectIntegrityError on every read path; a download path is never written."""
        oid = db.insert_or_update_object(os.urandom(size))
        corrupt(db, db.object_store.get(oid))
        with pytest.raises(ObjectIntegrityError, match=f"object '{oid}' version 0.*does not match its checksum"):
            db.get_blob_object(oid)
        dest = tmp_path / "out.bin"
        with pytest.raises(ObjectIntegrityError):
            db.download_object(oid, dest)
        assert not dest.exists()
        assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out.bin")] == []
        with pytest.raises(ObjectIntegrityError):
            db.open_blob_object(oid).read()

    def test_corrupted_pickle_is_never_unpickled(self, db):
        """A pickled object whose content fails its checksum raises before any unpickling."""
        oid = db.insert_or_update_object(list(range(100_000)), pickle=True)
        corrupt(db, db.object_store.get(oid))
        with pytest.raises(ObjectIntegrityError, match="does not match its checksum"):
            db.get_blob_object(oid)

    @pytest.mark.parametrize("kind", ["sqlite"])  # a file-system blob area only on SQLite
    def test_missing_blob_file_is_an_integrity_error(self, db):
        """Content that vanished from the blob area is reported, not returned empty."""
        oid = db.insert_or_update_object(os.urandom(MIB))
        db.object_store.blob_path(db.get_blob_fingerprint(oid)["data_sha256"]).unlink()
        with pytest.raises(ObjectIntegrityError, match="missing"):
            db.get_blob_object(oid)

    @pytest.mark.parametrize("kind", ["sqlite"])
    def test_blob_area_is_private(self, db):
        """The SQLite blob directory is 0700 and its files 0600."""
        oid = db.insert_or_update_object(os.urandom(MIB))
        path = db.object_store.blob_path(db.get_blob_fingerprint(oid)["data_sha256"])
        assert path.stat().st_mode & 0o777 == 0o600
        for folder in (db.object_store.blob_dir, path.parent):
            assert folder.stat().st_mode & 0o777 == 0o700
        assert db.object_store.blob_dir == pathlib.Path(str(db.object_store.path) + ".blobs")


class TestStreaming:
    def test_download_to_path_and_file_and_open_stream(self, db, tmp_path):
        """Content streams to a path, into a file object, and through a readable stream."""
        data = os.urandom(9 * MIB + 3)
        db.insert_or_update_object(data, object_id="big", control_version=True)
        db.insert_or_update_object(b"new", object_id="big", control_version=True)
        blob = db.download_object("big", tmp_path / "v0.bin", version=0)
        assert (blob.version, blob.data, (tmp_path / "v0.bin").read_bytes() == data) == (0, None, True)
        sink = io.BytesIO()
        db.download_object("big", sink, version=0)
        assert sink.getvalue() == data
        with db.open_blob_object("big", 0) as stream:
            assert stream.read(10) == data[:10]
            assert stream.read() == data[10:]
        assert db.open_blob_object("big").read() == b"new"


class TestLineage:
    def test_saved_with_task_id_is_generated_by_that_task(self, db):
        """Outside a workflow, saving with task_id merges the object into that task's generated."""
        db.insert_or_update_task({"task_id": "t1", "activity_id": "train", "generated": {"loss": 0.5}})
        db.insert_or_update_object(b"w", object_id="ckpt", task_id="t1", control_version=True)
        db.insert_or_update_object(b"w2", object_id="ckpt", task_id="t1", control_version=True)
        task = db.task_query({"task_id": "t1"})[0]
        assert task["generated"] == {"loss": 0.5, "object:ckpt": {"object_id": "ckpt", "version": 1,
                                                                  "data_sha256": _sha(b"w2")}}

    def test_tasks_generate_and_use_objects_in_a_workflow(self, db):
        """Inside a running task, a save defaults task_id to it (generated) and a load adds to its used."""

        @flowcept_task
        def produce(n):
            return {"oid": Flowcept.insert_or_update_object(b"x" * n, object_id="data", object_type="dataset")}

        @flowcept_task
        def consume(name):
            return {"size": len(Flowcept.db.get_blob_object(name).data)}

        with Flowcept(workflow_name="lineage") as fc:
            produce(3)
            consume("data")
        tasks = {t["activity_id"]: t for t in db.task_query({"workflow_id": fc.current_workflow_id})}
        ref = {"object_id": "data", "version": 0, "data_sha256": _sha(b"xxx")}
        assert tasks["produce"]["generated"] == {"oid": "data", "object:data": ref}
        assert tasks["consume"]["used"] == {"name": "data", "object:data": ref}
        assert tasks["consume"]["generated"] == {"size": 3}
        blob = db.get_blob_object("data")
        assert (blob.task_id, blob.workflow_id) == (tasks["produce"]["task_id"], fc.current_workflow_id)
        # The lineage queries follow the object from its producer to its consumer.
        produce_id, consume_id = tasks["produce"]["task_id"], tasks["consume"]["task_id"]
        assert [t["task_id"] for t in db.downstream(produce_id)] == [consume_id]
        assert [t["task_id"] for t in db.upstream(consume_id)] == [produce_id]
