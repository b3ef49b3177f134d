"""W3C PROV export (PROV-JSON, PROV-N, PROV-O Turtle) of a workflow, built with the ``prov`` package, page by page.

::

    workflow ──────────── Activity wf:<id>        wasAssociatedWith user:<name>, host:<hostname>
    task ──────────────── Activity task:<id>      wasStartedBy parent task (or the workflow)
    used / generated ──── Entity val:<sha256>     used / wasGeneratedBy, prov:role = the argument or output name
    dependencies, data flow ─ wasInformedBy       (data flow: a task used a hash an earlier task generated)
    hostname, user, agent_id ─ Agent              wasAssociatedWith

Values are identified by the SHA-256 of their canonical JSON, so one value used by several tasks is one entity.
Each page of tasks becomes a small PROV document, serialized and appended; entities and agents already written
are remembered in a scratch index on disk, not in memory. So a million tasks export with one page in memory.
"""

from __future__ import annotations

import datetime
import math
import os
import shutil
import tempfile
from typing import Any, Iterator
from urllib.parse import quote

import orjson
from prov.constants import PROV
from prov.identifier import Namespace

from flowcept.export._edges import ScratchIndex, direct_edges, value_items
from flowcept.export._source import PAGE_SIZE, RecordSource

__all__ = ["PROV_FORMATS", "NAMESPACES", "prov_documents", "build_prov_document", "write_prov"]

#: Export format name -> (``prov`` serializer name, file suffix).
PROV_FORMATS = {"prov-json": ("json", ".json"), "prov-n": ("provn", ".provn"), "prov-o": ("rdf", ".ttl")}

#: Prefixes of every identifier we write.
NAMESPACES = {
    "fc": "urn:flowcept:",
    "wf": "urn:flowcept:workflow:",
    "task": "urn:flowcept:task:",
    "val": "urn:flowcept:sha256:",
    "user": "urn:flowcept:user:",
    "host": "urn:flowcept:host:",
    "agent": "urn:flowcept:agent:",
}

FC = Namespace("fc", NAMESPACES["fc"])
_MAX_LITERAL = 256  # longer strings are not copied into prov:value (the hash identifies them)


def _local(value: Any) -> str:
    # Ids may hold any character; PROV-N and QNames accept %-escapes.
    return quote(str(value), safe="-_.~")


def _time(epoch: Any) -> datetime.datetime | None:
    if isinstance(epoch, (int, float)) and not isinstance(epoch, bool) and math.isfinite(epoch):
        return datetime.datetime.fromtimestamp(epoch, tz=datetime.timezone.utc)
    return None


def _literal(value: Any) -> Any:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int) or (isinstance(value, float) and math.isfinite(value)):
        return value
    if isinstance(value, str) and len(value) <= _MAX_LITERAL:
        return value
    return None


def _new_document():
    from prov.model import ProvDocument

    doc = ProvDocument()
    for prefix, uri in NAMESPACES.items():
        doc.add_namespace(prefix, uri)
    return doc


class _PageBuilder:
    """Adds records to PROV documents; remembers (in the scratch index) which entities and agents exist."""

    def __init__(self, scratch: ScratchIndex):
        self.scratch = scratch

    def _agent(self, doc, kind: str, name: Any) -> str | None:
        if name is None or name == "":
            return None
        ident = f"{kind}:{_local(name)}"
        if self.scratch.first_seen(ident):
            types = {"user": PROV["Person"], "host": FC["Host"], "agent": PROV["SoftwareAgent"]}
            doc.agent(ident, {"prov:type": types[kind], "prov:label": str(name)})
        return ident

    def _values(self, doc, activity: str, values: Any, when: Any, generated: bool) -> None:
        for name, value, digest in value_items(values):
            ident = f"val:{digest}"
            if self.scratch.first_seen(ident):
                attrs: dict[str, Any] = {"prov:type": FC["Value"]}
                literal = _literal(value)
                if literal is not None:
                    attrs["prov:value"] = literal
                doc.entity(ident, attrs)
            if generated:
                doc.wasGeneratedBy(ident, activity, _time(when), other_attributes={"prov:role": name})
            else:
                doc.used(activity, ident, _time(when), other_attributes={"prov:role": name})

    def _associate(self, doc, activity: str, record: dict) -> None:
        for kind, field in (("user", "user"), ("host", "hostname"), ("agent", "agent_id")):
            agent = self._agent(doc, kind, record.get(field))
            if agent is not None:
                doc.wasAssociatedWith(activity, agent)

    def add_workflow(self, doc, wf: dict) -> None:
        ident = f"wf:{_local(wf['workflow_id'])}"
        attrs = {"prov:type": FC["Workflow"], "fc:workflow_id": str(wf["workflow_id"])}
        for field in ("name", "campaign_id", "status", "subtype", "parent_workflow_id"):
            if wf.get(field) is not None:
                attrs[f"fc:{field}"] = str(wf[field])
        if wf.get("name"):
            attrs["prov:label"] = str(wf["name"])
        doc.activity(ident, _time(wf.get("started_at")), _time(wf.get("ended_at")), attrs)
        self._associate(doc, ident, wf)
        self._values(doc, ident, wf.get("used"), wf.get("started_at"), generated=False)
        self._values(doc, ident, wf.get("generated"), wf.get("ended_at"), generated=True)

    def add_task(self, doc, task: dict) -> None:
        ident = f"task:{_local(task['task_id'])}"
        attrs = {"prov:type": FC["Task"], "fc:task_id": str(task["task_id"])}
        for field in ("activity_id", "status", "subtype", "workflow_id", "campaign_id", "group_id"):
            if task.get(field) is not None:
                attrs[f"fc:{field}"] = str(task[field])
        if task.get("activity_id") is not None:
            attrs["prov:label"] = str(task["activity_id"])
        doc.activity(ident, _time(task.get("started_at")), _time(task.get("ended_at")), attrs)
        parent = task.get("parent_task_id")
        starter = f"task:{_local(parent)}" if parent is not None and parent != task["task_id"] else (
            f"wf:{_local(task['workflow_id'])}" if task.get("workflow_id") is not None else None)
        if starter is not None:
            doc.wasStartedBy(ident, starter=starter, time=_time(task.get("started_at")))
        self._associate(doc, ident, task)
        self._values(doc, ident, task.get("used"), task.get("started_at"), generated=False)
        self._values(doc, ident, task.get("generated"), task.get("ended_at"), generated=True)
        for upstream, downstream, kind in direct_edges(task):
            # Both ends may state one edge (dependencies and dependents): write it once.
            if kind == "dependency" and self.scratch.first_seen(f"informed:{upstream}>{downstream}"):
                doc.wasInformedBy(f"task:{_local(downstream)}", f"task:{_local(upstream)}")
        self.scratch.add_flows(task)  # also notes the dependencies, so data flow does not repeat them

    def data_edge_documents(self, per_document: int) -> Iterator[Any]:
        """The data-flow ``wasInformedBy`` edges, in documents of at most ``per_document`` relations (one document
        holding a million edges would hold a million prov records in memory)."""
        doc, n = _new_document(), 0
        for src, dst, _digest in self.scratch.data_edges():
            doc.wasInformedBy(f"task:{_local(dst)}", f"task:{_local(src)}")
            n += 1
            if n == per_document:
                yield doc
                doc, n = _new_document(), 0
        yield doc


def prov_documents(source: RecordSource, match_values: bool = False) -> Iterator[Any]:
    """The export as a sequence of small ``prov.model.ProvDocument`` objects: workflows first, then one per page
    of tasks, then the data-flow ``wasInformedBy`` edges a page at a time. Their union is the whole export."""
    with ScratchIndex(match_values=match_values) as scratch:
        builder = _PageBuilder(scratch)
        doc = _new_document()
        for wf in source.workflows():
            builder.add_workflow(doc, wf)
        yield doc
        for page in source.task_pages():
            doc = _new_document()
            for task in page:
                builder.add_task(doc, task)
            yield doc
        yield from builder.data_edge_documents(PAGE_SIZE)


def build_prov_document(source: RecordSource, match_values: bool = False):
    """The whole export as one in-memory ``ProvDocument`` (for small workflows and for checks)."""
    whole = _new_document()
    for doc in prov_documents(source, match_values):
        for record in doc.get_records():
            whole.add_record(record)
    return whole


# ---- writers: each appends one page document to the output file ------------------------------------------------

class _JsonWriter:
    """PROV-JSON groups records by kind (``activity``, ``used``...), so each kind is spooled to its own temporary
    file and the sections are joined at the end. Anonymous relation ids are renumbered across pages."""

    def __init__(self, path: str):
        self.path = path
        self.dir = tempfile.mkdtemp(prefix="flowcept_provjson_")
        self.sections: dict[str, Any] = {}
        self.anon = 0

    def add(self, doc) -> None:
        from prov.serializers.provjson import encode_json_container

        container = encode_json_container(doc)
        container.pop("prefix", None)
        for kind, records in container.items():
            out = self.sections.get(kind)
            if out is None:
                out = self.sections[kind] = open(os.path.join(self.dir, kind), "wb")
            for ident, body in records.items():
                if ident.startswith("_:"):
                    self.anon += 1
                    ident = f"_:r{self.anon}"
                out.write(b"," if out.tell() else b"")
                out.write(orjson.dumps(ident) + b":" + orjson.dumps(body))

    def close(self) -> None:
        try:
            with open(self.path, "wb") as out:
                out.write(b'{"prefix":' + orjson.dumps(NAMESPACES))
                for kind, part in self.sections.items():
                    part.close()
                    out.write(b"," + orjson.dumps(kind) + b":{")
                    with open(part.name, "rb") as src:
                        shutil.copyfileobj(src, out, 1 << 20)
                    out.write(b"}")
                out.write(b"}\n")
        finally:
            for part in self.sections.values():
                part.close()
            shutil.rmtree(self.dir, ignore_errors=True)


class _ProvnWriter:
    """PROV-N: one ``document ... endDocument`` around the statements of every page."""

    def __init__(self, path: str):
        self.out = open(path, "w", encoding="utf-8")
        self.out.write("document\n")
        for prefix, uri in NAMESPACES.items():
            self.out.write(f"  prefix {prefix} <{uri}>\n")
        self.out.write("\n")

    def add(self, doc) -> None:
        for record in doc.get_records():
            self.out.write("  " + record.get_provn() + "\n")

    def close(self) -> None:
        self.out.write("endDocument\n")
        self.out.close()


class _TurtleWriter:
    """PROV-O Turtle: each page's graph in Turtle, appended (Turtle allows a prefix to be declared again)."""

    def __init__(self, path: str):
        self.out = open(path, "w", encoding="utf-8")

    def add(self, doc) -> None:
        if doc.get_records():
            self.out.write(doc.serialize(format="rdf", rdf_format="turtle"))
            self.out.write("\n")

    def close(self) -> None:
        self.out.close()


_WRITERS = {"prov-json": _JsonWriter, "prov-n": _ProvnWriter, "prov-o": _TurtleWriter}


def write_prov(source: RecordSource, path: str, fmt: str = "prov-json", match_values: bool = False) -> dict:
    """Write the PROV export of ``source`` to ``path``.

    Args:
        source: the records (see :mod:`flowcept.export._source`).
        path: the output file.
        fmt: ``"prov-json"``, ``"prov-n"`` or ``"prov-o"`` (Turtle; needs ``rdflib``, ``prov[rdf]``).
        match_values: plain scalar values shared by two tasks also make ``wasInformedBy`` edges.

    Returns:
        ``{"format", "output", "pages"}``.
    """
    writer = _WRITERS[fmt](path)
    pages = 0
    try:
        for doc in prov_documents(source, match_values):
            writer.add(doc)
            pages += 1
    finally:
        writer.close()
    return {"format": fmt, "output": path, "pages": pages}

