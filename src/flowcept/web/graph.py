"""What the workflow page draws beside the raw records: the task graph and the workflow card."""

from __future__ import annotations

_NODE_FIELDS = ["task_id", "activity_id", "status", "started_at", "ended_at"]


def workflow_graph(db, workflow_id: str, limit: int) -> dict:
    """``{nodes, edges, truncated}`` for the first ``limit`` tasks of a workflow (by start time).

    Edges are ``{source, target, kind}`` between nodes of the page, as the store's lineage computes them
    (:func:`flowcept.query.lineage.edges`): ``parent``, ``dependency`` and ``data`` (an object id or content hash
    that the source generated and the target used).
    """
    tasks = db.store.find("tasks", {"workflow_id": workflow_id}, projection=_NODE_FIELDS,
                          sort=[("started_at", 1), ("task_id", 1)], limit=limit + 1)
    truncated = len(tasks) > limit
    tasks = tasks[:limit]
    ids = {t["task_id"] for t in tasks}
    from flowcept.query import lineage

    edges = [{"source": src, "target": dst, "kind": kind} for src, dst, kind in lineage.edges(db.store, workflow_id)
             if src in ids and dst in ids]
    nodes = [{k: t.get(k) for k in _NODE_FIELDS} for t in tasks]
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
