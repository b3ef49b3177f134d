"""OpenLineage RunEvents of a workflow (``openlineage-python`` classes), to a JSONL file or a Marquez-style endpoint.

Per workflow: START, then per task START and COMPLETE (or FAIL for ``ERROR``; a task still running has only its
START), then the workflow's COMPLETE or FAIL. Run ids are UUIDs derived from our ids with uuid5, so exporting twice
gives the same ids. A task's ``parent`` facet names its parent task's run (or the workflow's) and the workflow as
root; ``errorMessage`` carries a failed task's error; the custom ``flowcept`` facet carries the hostname, ids and
telemetry. Used and generated values become datasets named by their content hash, so data flow joins.

Event times: a record's own time when it has one (a task's START ``started_at``, its end ``ended_at``), else the
nearest time known, never 1970:

* a workflow without a record (tasks stored with ``save_workflow=False``), or whose record lacks its times, starts
  at its earliest task time and ends at its latest; when the record gives no status and no end, it ends as its
  tasks did: FAIL if any task failed, COMPLETE once every task finished (no end event while one still runs);
* a task without ``started_at`` starts at its ``utc_timestamp``, else its ``ended_at``, else its workflow's start;
  a task without ``ended_at`` ends at its start time;
* the export time only when nothing at all is known. Finding a workflow's task times costs one more pass over its
  tasks, made only for workflows whose record lacks them.
"""

from __future__ import annotations

import math
import time
import uuid
from enum import Enum
from typing import Any, Callable, Iterator
from urllib.parse import urlsplit, urlunsplit

import attr
import orjson
from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.facet_v2 import RunFacet, error_message_run, job_type_job, parent_run

from flowcept.errors import TransportError
from flowcept.export._edges import value_items
from flowcept.export._source import RecordSource

__all__ = ["FlowceptRunFacet", "PRODUCER", "run_uuid", "run_events", "event_json", "write_openlineage"]

#: The ``producer`` of every event (a URI naming this integration).
PRODUCER = "https://github.com/ORNL/flowcept"
#: uuid5 namespace of our run ids.
RUN_NAMESPACE = uuid.UUID("6f0c8a52-4a8e-5b63-9d0e-f10c0e5e1a71")
DEFAULT_NAMESPACE = "flowcept"
_DEFAULT_ENDPOINT = "api/v1/lineage"


@attr.define
class FlowceptRunFacet(RunFacet):
    """The custom ``flowcept`` run facet: where and how a task or workflow ran."""

    hostname: str | None = attr.field(default=None)
    task_id: str | None = attr.field(default=None)
    workflow_id: str | None = attr.field(default=None)
    campaign_id: str | None = attr.field(default=None)
    activity_id: str | None = attr.field(default=None)
    status: str | None = attr.field(default=None)
    telemetry: dict | None = attr.field(default=None)

    @staticmethod
    def _get_schema() -> str:
        return "https://github.com/ORNL/flowcept/spec/facets/FlowceptRunFacet.json"


def run_uuid(kind: str, ident: Any) -> str:
    """A stable UUID for a workflow (``kind="workflow"``) or task (``kind="task"``) id."""
    return str(uuid.uuid5(RUN_NAMESPACE, f"{kind}:{ident}"))


def _iso(epoch: Any) -> str | None:
    import datetime

    if isinstance(epoch, (int, float)) and not isinstance(epoch, bool) and math.isfinite(epoch):
        try:
            return datetime.datetime.fromtimestamp(epoch, tz=datetime.timezone.utc).isoformat()
        except (OverflowError, OSError, ValueError):  # outside the years datetime can hold
            return None
    return None


def _first_time(*candidates: Any) -> float | None:
    """The first candidate that is a usable epoch time (see :func:`_iso`), else None."""
    for value in candidates:
        if _iso(value) is not None:
            return value
    return None


class _Span:
    """What a workflow's tasks say when its record does not: earliest and latest task time, how they ended."""

    def __init__(self) -> None:
        self.first: float | None = None
        self.last: float | None = None
        self.tasks = 0
        self.failed = False
        self.all_ended = True

    def add(self, task: dict) -> None:
        self.tasks += 1
        start = _first_time(task.get("started_at"), task.get("utc_timestamp"), task.get("ended_at"))
        end = _first_time(task.get("ended_at"), start)
        if start is not None:
            self.first = start if self.first is None else min(self.first, start)
        if end is not None:
            self.last = end if self.last is None else max(self.last, end)
        self.failed = self.failed or task.get("status") == "ERROR"
        self.all_ended = self.all_ended and _end_state(task.get("status")) is not None


def _needs_span(wf: dict) -> bool:
    """Whether the workflow's record lacks a start time, or an end (time or status) its end event needs."""
    status = wf.get("status")
    return _iso(wf.get("started_at")) is None or (
        _iso(wf.get("ended_at")) is None and (status is None or _end_state(status) is not None))


def _task_spans(source: RecordSource, workflows: list[dict]) -> dict[Any, _Span]:
    """A :class:`_Span` per workflow whose record needs one (one pass over the tasks; none when none does)."""
    spans = {wf["workflow_id"]: _Span() for wf in workflows if _needs_span(wf)}
    if spans:
        for page in source.task_pages():
            for task in page:
                span = spans.get(task.get("workflow_id"))
                if span is not None:
                    span.add(task)
    return spans


def _workflow_end(wf: dict, span: _Span | None) -> RunState | None:
    """COMPLETE or FAIL from the record's status (or COMPLETE from its end time); a record without either ends as
    its tasks did: FAIL if one failed, COMPLETE if every one ended; None while the workflow runs."""
    end = _end_state(wf.get("status"))
    if end is None and wf.get("ended_at") is not None:
        end = RunState.COMPLETE
    if end is None and wf.get("status") is None and span is not None and span.tasks:
        end = RunState.FAIL if span.failed else (RunState.COMPLETE if span.all_ended else None)
    return end


def _error_text(record: dict) -> tuple[str, str | None]:
    err = record.get("stderr")
    if isinstance(err, dict):
        message = str(err.get("exception") or err.get("message") or err)
        return message, (str(err["traceback"]) if err.get("traceback") else None)
    if err:
        text = str(err)
        return text.strip().splitlines()[-1] if text.strip() else text, text
    return f"status {record.get('status')}", None


class _EventBuilder:
    def __init__(self, namespace: str):
        self.namespace = namespace

    def workflow_job(self, wf: dict) -> str:
        return str(wf.get("name") or wf["workflow_id"])

    def task_job(self, task: dict, wf_job: str) -> str:
        return f"{wf_job}.{task.get('activity_id') or 'task'}"

    def _datasets(self, values: Any, cls) -> list:
        return [cls(namespace=self.namespace, name=f"sha256:{digest}") for _, _, digest in value_items(values)]

    def event(self, state: RunState, when: Any, run_id: str, job: str, job_type: str, record: dict,
              parent: tuple[str, str] | None, root: tuple[str, str] | None,
              fc_facet: FlowceptRunFacet) -> RunEvent:
        facets: dict[str, Any] = {"flowcept": fc_facet}
        if parent is not None:
            root_facet = None
            if root is not None:
                root_facet = parent_run.Root(run=parent_run.RootRun(runId=root[0]),
                                             job=parent_run.RootJob(namespace=self.namespace, name=root[1]))
            facets["parent"] = parent_run.ParentRunFacet(
                run=parent_run.Run(runId=parent[0]), job=parent_run.Job(namespace=self.namespace, name=parent[1]),
                root=root_facet)
        if state == RunState.FAIL:
            message, trace = _error_text(record)
            facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(
                message=message, programmingLanguage="python", stackTrace=trace)
        job_facets = {"jobType": job_type_job.JobTypeJobFacet(processingType="BATCH", integration="FLOWCEPT",
                                                               jobType=job_type)}
        return RunEvent(
            eventType=state, eventTime=_iso(when),
            run=Run(runId=run_id, facets=facets), job=Job(namespace=self.namespace, name=job, facets=job_facets),
            inputs=self._datasets(record.get("used"), InputDataset),
            outputs=self._datasets(record.get("generated"), OutputDataset),
            producer=PRODUCER)


def _plain(value: Any) -> Any:
    # Serde.to_dict's rules (nulls dropped, empty dicts dropped from lists, enums as values) in one pass.
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            item = _plain(item)
            if item is not None:
                out[key] = item
        return out
    if isinstance(value, list):
        return [item for item in (_plain(v) for v in value if v is not None) if item is not None and item != {}]
    if isinstance(value, Enum):
        return value.value
    return value


def event_json(event: RunEvent) -> bytes:
    """The JSON of an event, the same document ``Serde.to_json`` gives, in about half the time."""
    return orjson.dumps(_plain(attr.asdict(event)), option=orjson.OPT_SORT_KEYS)


def _end_state(status: Any) -> RunState | None:
    if status == "ERROR":
        return RunState.FAIL
    if status == "FINISHED":
        return RunState.COMPLETE
    return None


def run_events(source: RecordSource, namespace: str = DEFAULT_NAMESPACE) -> Iterator[RunEvent]:
    """Every event of the export, streamed page by page (see the module docstring for the order and the times)."""
    builder = _EventBuilder(namespace)
    now = time.time()  # only for a run of which no time at all is known
    workflows = source.workflows()
    spans = _task_spans(source, workflows)
    jobs: dict[Any, str] = {}
    starts: dict[Any, float] = {}
    for wf in workflows:
        wf_id = wf["workflow_id"]
        span = spans.get(wf_id)
        starts[wf_id] = _first_time(wf.get("started_at"), span and span.first, wf.get("utc_timestamp"),
                                    span and span.last, now)
        wf_run, wf_job = run_uuid("workflow", wf_id), builder.workflow_job(wf)
        wf_facet = FlowceptRunFacet(hostname=wf.get("hostname"), workflow_id=wf_id, campaign_id=wf.get("campaign_id"),
                                    status=wf.get("status"))
        yield builder.event(RunState.START, starts[wf_id], wf_run, wf_job, "WORKFLOW", wf, None, None, wf_facet)
        jobs[wf_id] = wf_job
    for page in source.task_pages():
        parents = source.tasks_by_id({t["parent_task_id"] for t in page if t.get("parent_task_id") is not None})
        for task in page:
            wf_id = task.get("workflow_id")
            wf_job = jobs.get(wf_id, str(wf_id))
            root = (run_uuid("workflow", wf_id), wf_job)
            parent_id = task.get("parent_task_id")
            if parent_id is not None and parent_id in parents:
                parent = (run_uuid("task", parent_id), builder.task_job(parents[parent_id], wf_job))
            else:
                parent = root
            run_id, job = run_uuid("task", task["task_id"]), builder.task_job(task, wf_job)
            telemetry = task.get("telemetry_summary") or task.get("telemetry_at_end")
            facet = FlowceptRunFacet(hostname=task.get("hostname"), task_id=str(task["task_id"]),
                                     workflow_id=wf_id, campaign_id=task.get("campaign_id"),
                                     activity_id=task.get("activity_id"), status=task.get("status"),
                                     telemetry=telemetry if isinstance(telemetry, dict) else None)
            start = _first_time(task.get("started_at"), task.get("utc_timestamp"), task.get("ended_at"),
                                starts.get(wf_id), now)
            yield builder.event(RunState.START, start, run_id, job, "TASK", task, parent, root, facet)
            end = _end_state(task.get("status"))
            if end is not None:
                yield builder.event(end, _first_time(task.get("ended_at"), start), run_id, job, "TASK", task, parent,
                                    root, facet)
    for wf in workflows:
        span = spans.get(wf["workflow_id"])
        end = _workflow_end(wf, span)
        if end is not None:
            wf_facet = FlowceptRunFacet(hostname=wf.get("hostname"), workflow_id=wf["workflow_id"],
                                        campaign_id=wf.get("campaign_id"), status=wf.get("status"))
            when = _first_time(wf.get("ended_at"), span and span.last, starts[wf["workflow_id"]])
            yield builder.event(end, when, run_uuid("workflow", wf["workflow_id"]), builder.workflow_job(wf),
                                "WORKFLOW", wf, None, None, wf_facet)


def _http_sender(url: str) -> Callable[[RunEvent], None]:
    from openlineage.client.transport.http import HttpConfig, HttpTransport

    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        from flowcept.errors import ConfigError

        raise ConfigError(f"not an http(s) URL: {url!r}; give e.g. http://localhost:5000", key="url")
    base = urlunsplit((parts.scheme, parts.netloc, "/", "", ""))
    endpoint = parts.path.lstrip("/") or _DEFAULT_ENDPOINT
    transport = HttpTransport(HttpConfig(url=base, endpoint=endpoint, timeout=30))

    def send(event: RunEvent) -> None:
        try:
            transport.emit(event)
        except Exception as exc:  # noqa: BLE001 - requests/urllib3 errors, translated at this seam
            raise TransportError(f"OpenLineage endpoint {base}{endpoint} refused or did not answer: {exc}") from exc

    return send


def write_openlineage(source: RecordSource, path: str | None = None, url: str | None = None,
                      namespace: str = DEFAULT_NAMESPACE) -> dict:
    """Write the events to ``path`` (JSON Lines, one event per line) and/or POST each to ``url``.

    Args:
        source: the records.
        path: output JSONL file.
        url: a Marquez-compatible endpoint: ``http://host:port`` posts to ``/api/v1/lineage``; a URL with a
            path posts there.
        namespace: the OpenLineage job and dataset namespace.

    Returns:
        ``{"format": "openlineage", "output", "url", "events"}``.

    Raises:
        TransportError: the endpoint refused an event or did not answer.
    """
    if path is None and url is None:
        from flowcept.errors import ConfigError

        raise ConfigError("give an output path or a url for the OpenLineage events", key="output")
    send = _http_sender(url) if url else None
    out = open(path, "wb") if path else None
    count = 0
    try:
        for event in run_events(source, namespace):
            if out is not None:
                out.write(event_json(event) + b"\n")
            if send is not None:
                send(event)
            count += 1
    finally:
        if out is not None:
            out.close()
    return {"format": "openlineage", "output": path, "url": url, "events": count}
