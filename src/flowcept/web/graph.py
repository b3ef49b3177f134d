"""What the workflow page draws beside the raw records: the task graph and the workflow card."""

from __future__ import annotations

_SHOWN = ("task_id", "activity_id", "status", "started_at", "ended_at")
_NODE_FIELDS = [*_SHOWN, "parent_task_id", "dependencies"]


def workflow_graph(db, workflow_id: str, limit: int) -> dict:
    """``{nodes, edges, truncated}`` for the first ``limit`` tasks of a workflow (by start time).

    Edges are ``{source, target, kind}`` between nodes of the page. For a workflow that fits in the page they are
    the store's lineage (:func:`flowcept.query.lineage.edges`): ``parent``, ``dependency`` and ``data`` (an object
    id or content hash one task generated and the other used). For a larger workflow (``truncated``) they are the
    ``parent`` and ``dependency`` edges of the page's tasks only: computing every edge of the whole workflow to
    draw a page of it would cost more than the page.
    """
    tasks = db.store.find("tasks", {"workflow_id": workflow_id}, projection=_NODE_FIELDS,
                          sort=[("started_at", 1), ("task_id", 1)], limit=limit + 1)
    truncated = len(tasks) > limit
    tasks = tasks[:limit]
    ids = {t["task_id"] for t in tasks}
    if truncated:
        pairs = [(t["parent_task_id"], t["task_id"], "parent") for t in tasks if t.get("parent_task_id")]
        pairs += [(dep, t["task_id"], "dependency") for t in tasks for dep in t.get("dependencies") or ()]
    else:
        from flowcept.query import lineage

        pairs = lineage.edges(db.store, workflow_id)
    edges = [{"source": src, "target": dst, "kind": kind} for src, dst, kind in pairs if src in ids and dst in ids]
    nodes = [{k: t.get(k) for k in _SHOWN} for t in tasks]
    return {"nodes": nodes, "edges": edges, "truncated": truncated}


def workflow_card_markdown(workflow_id: str) -> str:
    """The markdown workflow card of a stored workflow (the reports module's renderer).

    Raises:
        NotImplementedError: this installation has no report renderer.
    """
    from flowcept.controller import Flowcept

    if not hasattr(Flowcept, "generate_report"):
        raise NotImplementedError("workflow cards need the reports module (flowcept.report)")
    stats = Flowcept.generate_report(report_type="workflow_card", format="markdown", workflow_id=workflow_id)
    return stats["markdown"]
