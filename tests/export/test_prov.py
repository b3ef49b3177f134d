"""W3C PROV export on both stores: the file read back with ``prov`` is the document built, with exact content."""

from __future__ import annotations

import pytest

from flowcept.errors import ConfigError
from flowcept.export import export_workflow
from flowcept.export._source import StoreSource
from flowcept.export.prov import build_prov_document, write_prov
from tests.export._records import TASKS, tid


def _relations(doc, kind):
    from prov.model import ProvRecord  # noqa: F401

    out = set()
    for rec in doc.get_records():
        if rec.get_type().localpart == kind:
            out.add(tuple(str(v) for _, v in rec.formal_attributes if v is not None and not hasattr(v, "year")))
    return out


class TestProvExport:
    def test_prov_json_reads_back_equal(self, known, store, tmp_path):
        """PROV-JSON written in pages of 2 tasks reads back equal to the whole document, with exact relations."""
        from prov.model import ProvDocument

        wf, records = known
        path = tmp_path / "run.json"
        out = write_prov(StoreSource(store, wf, page_size=2), str(path), "prov-json")
        assert out["pages"] == 1 + 4 + 1  # workflows, 7 tasks in pages of 2, data-flow edges
        back = ProvDocument.deserialize(str(path), format="json")
        whole = build_prov_document(StoreSource(store, wf, page_size=1000))
        assert back == whole
        activities = {str(r.identifier) for r in back.get_records() if r.get_type().localpart == "Activity"}
        assert activities == {f"wf:{wf}"} | {f"task:{tid(wf, t[0])}" for t in TASKS}
        informed = _relations(back, "Communication")
        t = lambda s: f"task:{tid(wf, s)}"  # noqa: E731
        # load1 -> train1 (dependency), load2 -> train2/train3 (data [4, 5]), train1 -> eval1 (model)
        assert informed == {(t("train1"), t("load1")), (t("train2"), t("load2")), (t("train3"), t("load2")),
                            (t("eval1"), t("train1"))}
        starts = {(a, s) for a, *rest in _relations(back, "Start") for s in rest[-1:]}
        assert (t("step1"), t("train1")) in starts and (t("load1"), f"wf:{wf}") in starts
        entities = {str(r.identifier) for r in back.get_records() if r.get_type().localpart == "Entity"}
        # one entity per distinct value: path x2, data x2, lr x2, api_key, model x2, batch, loss, epochs, password
        assert len(entities) == 13
        agents = {str(r.identifier) for r in back.get_records() if r.get_type().localpart == "Agent"}
        assert agents == {"user:alice", "host:node1", "host:node2"}

    def test_prov_n_and_turtle(self, known, store, tmp_path):
        """PROV-N holds one activity statement per task and workflow; the Turtle parses with rdflib to as many
        prov:Activity subjects."""
        import rdflib

        wf, _ = known
        provn = tmp_path / "run.provn"
        export_workflow(wf, "prov-n", str(provn), store=store)
        text = provn.read_text()
        assert text.startswith("document\n") and text.rstrip().endswith("endDocument")
        assert sum(1 for line in text.splitlines() if line.startswith("  activity(")) == len(TASKS) + 1
        ttl = tmp_path / "run.ttl"
        export_workflow(wf, "prov-o", str(ttl), store=store)
        graph = rdflib.Graph().parse(str(ttl), format="turtle")
        prov = rdflib.Namespace("http://www.w3.org/ns/prov#")
        assert len(set(graph.subjects(rdflib.RDF.type, prov.Activity))) == len(TASKS) + 1
        assert len(set(graph.subject_objects(prov.wasInformedBy))) == 4

    def test_unknown_workflow_names_it(self, store, tmp_path):
        """An unknown workflow id is a ConfigError naming the id; nothing is written."""
        with pytest.raises(ConfigError, match="no workflow 'nope-123' in the store"):
            export_workflow("nope-123", "prov-json", str(tmp_path / "x.json"), store=store)
        assert not (tmp_path / "x.json").exists()

    def test_cycle_in_data_does_not_loop(self, store, tmp_path):
        """A task that uses what it generated, and two tasks trading one value, export without self edges or loops."""
        from prov.model import ProvDocument

        v = {"state": [1, 2, 3]}
        store.upsert([
            {"type": "workflow", "workflow_id": "wf-cycle"},
            {"type": "task", "task_id": "c-a", "workflow_id": "wf-cycle", "used": v, "generated": v,
             "started_at": 1.0, "ended_at": 2.0, "parent_task_id": "c-a"},
            {"type": "task", "task_id": "c-b", "workflow_id": "wf-cycle", "used": v, "generated": v,
             "started_at": 3.0, "ended_at": 4.0, "dependencies": ["c-b"]},
        ])
        path = tmp_path / "cycle.json"
        export_workflow("wf-cycle", "prov-json", str(path), store=store)
        back = ProvDocument.deserialize(str(path), format="json")
        assert _relations(back, "Communication") == {("task:c-b", "task:c-a")}
        assert {a for a, *_ in _relations(back, "Start")} == {"task:c-a", "task:c-b"}

    def test_object_ids_dependents_and_store_lineage(self, store, tmp_path):
        """Object ids join tasks even inside different values; a load of a version links to the task that saved
        that version only (a use without a version to every saver); dependents link forward once; the export's
        wasInformedBy are the edges the store's lineage finds."""
        from prov.model import ProvDocument

        from flowcept.query.lineage import edges

        store.upsert([
            {"type": "workflow", "workflow_id": "wf-obj"},
            {"type": "task", "task_id": "o-a", "workflow_id": "wf-obj", "started_at": 1.0, "ended_at": 2.0,
             "generated": {"model": {"object_id": "obj-1", "version": 0}}, "dependents": ["o-c"]},
            {"type": "task", "task_id": "o-s", "workflow_id": "wf-obj", "started_at": 2.5, "ended_at": 2.6,
             "generated": {"model": {"object_id": "obj-1", "version": 2}}},
            {"type": "task", "task_id": "o-b", "workflow_id": "wf-obj", "started_at": 3.0, "ended_at": 4.0,
             "used": {"m": {"object_id": "obj-1", "version": 2}}},
            {"type": "task", "task_id": "o-c", "workflow_id": "wf-obj", "started_at": 5.0, "ended_at": 6.0,
             "dependencies": ["o-a"]},
            {"type": "task", "task_id": "o-d", "workflow_id": "wf-obj", "started_at": 7.0, "ended_at": 8.0,
             "used": {"m": [{"object_id": "obj-1", "version": 0}]}},
        ])
        path = tmp_path / "obj.json"
        export_workflow("wf-obj", "prov-json", str(path), store=store)
        informed = _relations(ProvDocument.deserialize(str(path), format="json"), "Communication")
        assert informed == {("task:o-b", "task:o-s"), ("task:o-c", "task:o-a"), ("task:o-d", "task:o-a")}
        stored = {(f"task:{dst}", f"task:{src}") for src, dst, kind in edges(store, "wf-obj") if kind != "parent"}
        assert stored == informed

    def test_known_workflow_covers_store_lineage(self, known, store, tmp_path):
        """On the known workflow too, the store's dependency and data edges are all in the export."""
        from prov.model import ProvDocument

        from flowcept.query.lineage import edges

        wf, _ = known
        path = tmp_path / "known.json"
        export_workflow(wf, "prov-json", str(path), store=store)
        informed = _relations(ProvDocument.deserialize(str(path), format="json"), "Communication")
        stored = {(f"task:{dst}", f"task:{src}") for src, dst, kind in edges(store, wf) if kind != "parent"}
        assert stored <= informed

    def test_match_values_follows_the_store_lineage_rule(self, store, tmp_path):
        """With match_values, PROV links what lineage_edges(match_values=True) links: a value is one argument or
        output, never an element of a list; numbers compare by value (77 == 77.0); "REDACTED" links nothing."""
        from prov.model import ProvDocument

        from flowcept.query.lineage import edges

        store.upsert([{"type": "task", "task_id": tid_, "workflow_id": "wf-mv", "started_at": at, **fields}
                      for tid_, at, fields in [
                          ("mv-p", 1.0, {"generated": {"scores": [10, 20, 30]}}),
                          ("mv-q", 2.0, {"used": {"v": 20}}),
                          ("mv-r", 3.0, {"generated": {"best": 77, "token": "REDACTED"}}),
                          ("mv-s", 4.0, {"used": {"v": 77.0}}),
                          ("mv-u", 5.0, {"used": {"password": "REDACTED"}}),
                      ]])
        path = tmp_path / "mv.json"
        export_workflow("wf-mv", "prov-json", str(path), store=store, match_values=True)
        informed = _relations(ProvDocument.deserialize(str(path), format="json"), "Communication")
        assert informed == {("task:mv-s", "task:mv-r")}
        assert list(edges(store, "wf-mv", match_values=True)) == [("mv-r", "mv-s", "value")]
