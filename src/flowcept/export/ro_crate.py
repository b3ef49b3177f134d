"""A Workflow Run RO-Crate of one workflow, conforming to the Provenance Run Crate profile 0.5.

::

    ./ (root Dataset)  conformsTo process/workflow/provenance run crate 0.5, workflow-ro-crate 1.0
    ├── workflow.json      main entity: File + SoftwareSourceCode + ComputationalWorkflow + HowTo (Python)
    │     hasPart: one SoftwareApplication per activity_id;  step: one HowToStep per activity_id
    ├── prov.json          the PROV-JSON export (flowcept.export.prov)
    ├── WORKFLOW_CARD.md   the workflow card (flowcept.report)
    ├── #run-<wf>          CreateAction: the workflow run (instrument workflow.json)
    ├── #task-<id>         CreateAction per task: instrument its tool, object inputs, result outputs
    ├── #control-<id>      ControlAction per task: instrument its step, object the task's CreateAction
    ├── #organize-<wf>     OrganizeAction: instrument flowcept, result the run, object every ControlAction
    └── #value-<sha256>-<name>  PropertyValue per distinct (name, value): an output and the input that used it join
                           by their ``identifier``, ``sha256:<hash of the value>``

The skeleton (root, workflow, tools, steps, files, profiles) is built with the ``rocrate`` package; the per-task
entities are streamed into the metadata file page by page, so the crate of a million tasks is written with one
page in memory.
"""

from __future__ import annotations

import datetime
import os
import shutil
import tempfile
from typing import Any
from urllib.parse import quote

import orjson

from flowcept.export._edges import ScratchIndex, value_items
from flowcept.export._source import RecordSource

__all__ = ["write_ro_crate", "PROFILES"]

#: The profiles the crate conforms to: (id, name, version).
PROFILES = (
    ("https://w3id.org/ro/wfrun/process/0.5", "Process Run Crate", "0.5"),
    ("https://w3id.org/ro/wfrun/workflow/0.5", "Workflow Run Crate", "0.5"),
    ("https://w3id.org/ro/wfrun/provenance/0.5", "Provenance Run Crate", "0.5"),
    ("https://w3id.org/workflowhub/workflow-ro-crate/1.0", "Workflow RO-Crate", "1.0"),
)
_STATUS = {"FINISHED": "http://schema.org/CompletedActionStatus", "ERROR": "http://schema.org/FailedActionStatus",
           "RUNNING": "http://schema.org/ActiveActionStatus"}
_MAX_VALUE_CHARS = 4096
_PROFILE_TERMS = {"ComputationalWorkflow": "https://bioschemas.org/ComputationalWorkflow",
                  "FormalParameter": "https://bioschemas.org/FormalParameter"}


def _iso(epoch: Any) -> str | None:
    if isinstance(epoch, (int, float)) and not isinstance(epoch, bool):
        return datetime.datetime.fromtimestamp(epoch, tz=datetime.timezone.utc).isoformat()
    return None


def _frag(kind: str, ident: Any) -> str:
    return f"#{kind}-{quote(str(ident), safe='-_.~')}"


def _ref(ident: str) -> dict:
    return {"@id": ident}


class _TaskEntities:
    """The per-task JSON-LD entities, spooled to a file as they are made."""

    def __init__(self, spool, scratch: ScratchIndex):
        self.spool = spool
        self.scratch = scratch
        self.activities: dict[str, float] = {}  # distinct activity id -> earliest start (few)
        self.controls = tempfile.TemporaryFile()
        self.count = 0

    def emit(self, entity: dict) -> None:
        self.spool.write(b",\n" + orjson.dumps(entity, option=orjson.OPT_NON_STR_KEYS, default=str))

    def values(self, values: Any) -> list[dict]:
        """References to the PropertyValues of ``values``, written the first time each (name, value) is seen: one
        value passed under two names is two entities, each with its own name and the value's hash."""
        refs = []
        for name, value, digest in value_items(values):
            ident = _frag("value", f"{digest}-{name}")
            if self.scratch.first_seen(ident):
                text = value if isinstance(value, str) else orjson.dumps(
                    value, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_SORT_KEYS, default=str).decode()
                if len(text) > _MAX_VALUE_CHARS:
                    text = text[:_MAX_VALUE_CHARS] + "…"
                self.emit({"@id": ident, "@type": "PropertyValue", "name": name, "value": text,
                           "identifier": f"sha256:{digest}"})
            refs.append(_ref(ident))
        return refs

    def add(self, task: dict) -> None:
        activity = str(task.get("activity_id") or "task")
        start = task.get("started_at")
        start = float(start) if isinstance(start, (int, float)) and not isinstance(start, bool) else float("inf")
        self.activities[activity] = min(self.activities.get(activity, start), start)
        action_id, control_id = _frag("task", task["task_id"]), _frag("control", task["task_id"])
        action = {"@id": action_id, "@type": "CreateAction", "name": f"{activity} ({task['task_id']})",
                  "instrument": _ref(_frag("tool", activity)), "object": self.values(task.get("used")),
                  "result": self.values(task.get("generated"))}
        for key, field in (("startTime", "started_at"), ("endTime", "ended_at")):
            if _iso(task.get(field)):
                action[key] = _iso(task.get(field))
        if task.get("status") in _STATUS:
            action["actionStatus"] = _ref(_STATUS[task["status"]])
        if task.get("status") == "ERROR" and task.get("stderr"):
            action["error"] = str(task["stderr"])[:_MAX_VALUE_CHARS]
        if task.get("hostname"):
            action["location"] = str(task["hostname"])
        self.emit(action)
        self.emit({"@id": control_id, "@type": "ControlAction", "name": f"orchestrate {activity}",
                   "instrument": _ref(_frag("step", activity)), "object": _ref(action_id)})
        self.controls.write((b"," if self.count else b"") + orjson.dumps(_ref(control_id)))
        self.count += 1


def _skeleton(wf: dict, activities: list[str], files: dict[str, str], workflow_file: str, license_id: str | None,
              run_values: tuple[list, list]) -> tuple[Any, list[dict]]:
    """The crate (``rocrate.ROCrate``) with its fixed entities, and those entities as JSON-LD dicts."""
    from rocrate.model.computationalworkflow import ComputationalWorkflow
    from rocrate.model.computerlanguage import ComputerLanguage
    from rocrate.model.contextentity import ContextEntity
    from rocrate.rocrate import ROCrate

    class _WorkflowWithSteps(ComputationalWorkflow):
        # The provenance profile: a workflow that lists steps is also a HowTo.
        TYPES = ["File", "SoftwareSourceCode", "ComputationalWorkflow", "HowTo"]

    from flowcept import __version__

    crate = ROCrate()
    name = str(wf.get("name") or wf["workflow_id"])
    crate.name = f"Workflow run: {name}"
    crate.description = (f"Provenance of the flowcept workflow {wf['workflow_id']} ({name}): one action per task, "
                         "with the PROV-JSON export and the workflow card.")
    crate.datePublished = datetime.datetime.now(datetime.timezone.utc).isoformat()
    if license_id:
        crate.license = crate.add(ContextEntity(crate, license_id, properties={"@type": "CreativeWork",
                                                                             "name": license_id}))
    else:
        crate.license = crate.add(ContextEntity(crate, "#license-unspecified", properties={
            "@type": "CreativeWork", "name": "No license was given when this crate was exported",
            "description": "Set one with: flowcept export --format ro-crate --license <URL>"}))
    profiles = [crate.add(ContextEntity(crate, pid, properties={"@type": "CreativeWork", "name": pname,
                                                                "version": pver}))
                for pid, pname, pver in PROFILES]
    python = crate.add(ComputerLanguage(crate, "#python", properties={
        "name": "Python", "identifier": {"@id": "https://www.python.org/"}, "url": {"@id": "https://www.python.org/"}}))
    workflow = crate.add_workflow(workflow_file, dest_path="workflow.json", main=True, lang=python,
                                  cls=_WorkflowWithSteps, properties={
                                      "name": name, "description": "The flowcept workflow record: a Python "
                                                                   "program whose functions ran as tasks"})
    # The run-crate profiles 0.5 build on RO-Crate 1.1 and Workflow RO-Crate 1.0: declare exactly those
    # (add_workflow above added its own Workflow RO-Crate profile entity).
    for entity in list(crate.get_entities()):
        if entity.id.startswith("https://w3id.org/workflowhub/workflow-ro-crate/") and entity not in profiles:
            crate.delete(entity)
    crate.root_dataset["conformsTo"] = profiles
    crate.metadata["conformsTo"] = {"@id": "https://w3id.org/ro/crate/1.1"}
    tools, steps = [], []
    for position, activity in enumerate(activities):
        tool = crate.add(ContextEntity(crate, _frag("tool", activity), properties={
            "@type": "SoftwareApplication", "name": activity}))
        step = crate.add(ContextEntity(crate, _frag("step", activity), properties={
            "@type": "HowToStep", "name": activity, "position": str(position), "workExample": tool}))
        tools.append(tool)
        steps.append(step)
    workflow["hasPart"] = tools
    workflow["step"] = steps
    for dest, (src, desc) in files.items():
        crate.add_file(src, dest_path=dest, properties={"name": dest, "description": desc,
                                                        "encodingFormat": _media_type(dest)})
    engine = crate.add(ContextEntity(crate, "#flowcept", properties={
        "@type": "SoftwareApplication", "name": "flowcept", "version": __version__,
        "url": {"@id": "https://github.com/ORNL/flowcept"}}))
    run = {"@type": "CreateAction", "name": f"Run of workflow {name}", "instrument": workflow,
           "object": run_values[0], "result": run_values[1]}
    for key, field in (("startTime", "started_at"), ("endTime", "ended_at")):
        if _iso(wf.get(field)):
            run[key] = _iso(wf.get(field))
    if wf.get("status") in _STATUS:
        run["actionStatus"] = {"@id": _STATUS[wf["status"]]}
    if wf.get("user"):
        run["agent"] = crate.add(ContextEntity(crate, _frag("person", wf["user"]), properties={
            "@type": "Person", "name": str(wf["user"])}))
    run_entity = crate.add(ContextEntity(crate, _frag("run", wf["workflow_id"]), properties=run))
    crate.root_dataset["mentions"] = [run_entity]
    crate.add(ContextEntity(crate, _frag("organize", wf["workflow_id"]), properties={
        "@type": "OrganizeAction", "name": f"flowcept orchestration of {name}", "instrument": engine,
        "result": run_entity}))
    return crate, [e.properties() for e in crate.get_entities()]


def _media_type(name: str) -> str:
    return {".json": "application/json", ".md": "text/markdown"}.get(os.path.splitext(name)[1], "text/plain")


def write_ro_crate(source: RecordSource, path: str, license: str | None = None, match_values: bool = False) -> dict:
    """Write the crate of the (one) workflow of ``source`` to the folder ``path`` (or a ``.zip`` file).

    Args:
        source: the records of one workflow.
        path: output folder (created; files in it are replaced) or a path ending in ``.zip``.
        license: URL of the license of the crate's content (the profile requires one; without it a
            "no license given" entity is written).
        match_values: passed to the PROV export inside the crate.

    Returns:
        ``{"format": "ro-crate", "output", "tasks"}``.
    """
    from flowcept.export.prov import write_prov
    from flowcept.report import render_workflow_card

    workflows = source.workflows()
    if len(workflows) != 1:
        from flowcept.errors import ConfigError

        raise ConfigError(f"an RO-Crate holds one workflow; got {len(workflows)}", key="workflow_id")
    wf = workflows[0]
    as_zip = str(path).endswith(".zip")
    out_dir = tempfile.mkdtemp(prefix="flowcept_crate_") if as_zip else str(path)
    work = tempfile.mkdtemp(prefix="flowcept_crate_work_")
    try:
        os.makedirs(out_dir, exist_ok=True)
        prov_path = os.path.join(work, "prov.json")
        write_prov(source, prov_path, "prov-json", match_values)
        card_path = os.path.join(work, "WORKFLOW_CARD.md")
        with open(card_path, "w", encoding="utf-8") as fh:
            fh.write(render_workflow_card(source))
        workflow_file = os.path.join(work, "workflow.json")
        with open(workflow_file, "wb") as fh:
            fh.write(orjson.dumps(_redacted_workflow(wf), option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS,
                                  default=str))
        spool_path = os.path.join(work, "entities.jsonl")
        with ScratchIndex() as scratch, open(spool_path, "wb") as spool:
            entities = _TaskEntities(spool, scratch)
            run_values = (entities.values(wf.get("used")), entities.values(wf.get("generated")))
            for page in source.task_pages():
                for task in page:
                    entities.add(task)
            files = {"prov.json": (prov_path, "W3C PROV-JSON provenance of the workflow run"),
                     "WORKFLOW_CARD.md": (card_path, "Workflow card: summary of the run")}
            spool.flush()
            activities = sorted(entities.activities, key=lambda a: (entities.activities[a], a))
            crate, skeleton = _skeleton(wf, activities, files, workflow_file, license, run_values)
            crate.write(out_dir)
            _assemble(os.path.join(out_dir, "ro-crate-metadata.json"), skeleton, spool_path, entities.controls,
                      _frag("organize", wf["workflow_id"]))
            entities.controls.close()
            count = entities.count
        if as_zip:
            base = str(path)[:-4]
            shutil.make_archive(base, "zip", out_dir)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if as_zip:
            shutil.rmtree(out_dir, ignore_errors=True)
    return {"format": "ro-crate", "output": str(path), "tasks": count}


def _redacted_workflow(wf: dict) -> dict:
    from flowcept.report._redact import redact

    return redact({k: v for k, v in wf.items() if k not in ("machine_info", "flowcept_settings")})


def _assemble(metadata_path: str, skeleton: list[dict], spool_path: str, controls, organize_id: str) -> None:
    """Rewrite the metadata file: the skeleton, the spooled task entities, then the OrganizeAction whose ``object``
    lists every ControlAction (copied from its spool, never held in memory)."""
    with open(metadata_path, "rb") as fh:
        context = orjson.loads(fh.read())["@context"]
    # The run-crate profiles (0.5) name workflow types with the bioschemas IRIs of RO-Crate 1.1; the 1.3 context
    # the rocrate package writes moved them under bioschemas.org/terms/. A local term definition keeps the profiles'.
    context = [context, _PROFILE_TERMS]
    organize = next(e for e in skeleton if e.get("@id") == organize_id)
    head = [e for e in skeleton if e.get("@id") != organize_id]
    with open(metadata_path, "wb") as out:
        out.write(b'{"@context": ' + orjson.dumps(context) + b',\n"@graph": [\n')
        out.write(b",\n".join(orjson.dumps(e) for e in head))
        with open(spool_path, "rb") as spool:
            shutil.copyfileobj(spool, out, 1 << 20)
        body = orjson.dumps(organize)
        out.write(b",\n" + body[:-1] + b', "object": [')
        controls.seek(0)
        shutil.copyfileobj(controls, out, 1 << 20)
        out.write(b"]}\n]}\n")

