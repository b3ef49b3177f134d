"""Lineage between tasks, computed in the store: the edges of a workflow and directed walks up or down from a task.

Edges (``src`` produced or started what ``dst`` consumed), see :mod:`flowcept.store.lineage` for the SQL:

* ``parent``: ``dst.parent_task_id == src``;
* ``dependency``: ``src`` is in ``dst.dependencies`` (or ``dst`` in ``src.dependents``);
* ``data``: a string under a key ``object_id``, ``sha256`` or ``data_sha256`` (any depth) of ``src.generated`` is
  found the same way in ``dst.used``, and ``src`` did not start after ``dst``;
* ``value`` (only with ``match_values=True``): a plain scalar that ``src`` generated and ``dst`` used, within one
  workflow, never trivial ones (null, booleans, 0, 1, -1, strings shorter than two characters). A value is an
  entry of ``used``/``generated`` (one argument or output), as the exports read them: elements of a list and
  scalars inside a nested dict are not matched on their own.

A task is never its own neighbour, and walks visit each task once, so cycles in the data end.
"""

from __future__ import annotations

from typing import Any, Iterator, Mapping

from flowcept.errors import QueryError
from flowcept.store._filters import check_limit, compile_order_by, decode_docs, get_path, split_path
from flowcept.store.lineage import edges_sql, values_steps, walk_sql

__all__ = ["EDGE_KINDS", "edges", "upstream", "downstream", "tasks_recursive"]

EDGE_KINDS = ("parent", "dependency", "data", "value")
# A depth past this is no limit at all (and stays inside SQL's integers).
_UNLIMITED = 2 ** 31


def _dialect(store) -> tuple[str, str, str]:
    """(dialect name, placeholder, document-as-text expression of ``t.doc``)."""
    name = store.dialect.name
    if name == "sqlite":
        return name, "?", "t.doc"
    return name, "%s", "t.doc::text"


def _values_steps(store, workflow_id: Any) -> list[tuple[str, list]]:
    name, ph, _ = _dialect(store)
    return [(sql, [workflow_id] * sql.count(ph)) for sql in values_steps(name)]


def edges(store, workflow_id: str, match_values: bool = False) -> Iterator[tuple[str, str, str]]:
    """Every edge ``(src task id, dst task id, kind)`` between two tasks of ``workflow_id``, streamed.

    Ordered by ``(src, dst, kind)``; an edge of two kinds comes once per kind. An unknown workflow has no edges.

    Args:
        store: a :class:`flowcept.store.Store` with ``run_sql`` (the SQLite and PostgreSQL stores).
        workflow_id: the workflow.
        match_values: also link equal non-trivial scalar values (kind ``value``).
    """
    name, _, _ = _dialect(store)
    sql, binds = edges_sql(name, match_values)
    steps = _values_steps(store, workflow_id) if match_values else []
    steps.append((sql, [workflow_id] * binds))
    for src, dst, kind in store.run_sql(steps):
        yield src, dst, kind


def _check_depth(depth: Any) -> int | None:
    if depth is None:
        return None
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 0:
        raise QueryError(f"depth must be None (no limit) or a non-negative int, got {depth!r}")
    return None if depth >= _UNLIMITED else depth


def _walk(store, task_id: str, direction: str, depth: Any, match_values: bool, projection: Any) -> list[dict]:
    limit = _check_depth(depth)
    if not isinstance(task_id, str) or not task_id:
        raise QueryError(f"task_id must be a non-empty string, got {task_id!r}")
    start = store.find("tasks", {"task_id": task_id}, projection=["workflow_id"], limit=1)
    if not start:
        raise QueryError(f"unknown task id {task_id!r}: no such task in the store")
    if limit == 0:
        return []
    name, ph, doc = _dialect(store)
    walk, n_limit = walk_sql(name, "up" if direction == "up" else "down", limit is not None, match_values)
    order, oparams = compile_order_by([("started_at", 1)], store.dialect, tiebreak="t.id")
    sql = (f"SELECT {doc} FROM ({walk}) AS w JOIN tasks AS t ON t.id = w.id WHERE w.id <> {ph}"
           f"{order.replace('doc', 't.doc')}")
    params = [task_id] + [limit] * n_limit + [task_id] + oparams
    steps = _values_steps(store, start[0].get("workflow_id")) if match_values else []
    steps.append((sql, params))
    return decode_docs(store.run_sql(steps), projection)


def upstream(store, task_id: str, depth: int | None = None, match_values: bool = False,
             projection: Any = None) -> list[dict]:
    """The tasks ``task_id`` depends on, transitively: its parents, dependencies and the producers of what it used.

    Only that direction: a sibling that shares an upstream task is not included.

    Args:
        store: the store.
        task_id: the task to start from (not itself in the result, even on a cycle).
        depth: at most this many edges away; None for no limit, 0 for none.
        match_values: also follow ``value`` edges (see the module docstring).
        projection: fields to return, as for ``find``.

    Returns:
        The task records, ordered by ``started_at`` then ``task_id``.

    Raises:
        QueryError: unknown ``task_id`` (the message names it) or a bad ``depth``.
    """
    return _walk(store, task_id, "up", depth, match_values, projection)


def downstream(store, task_id: str, depth: int | None = None, match_values: bool = False,
               projection: Any = None) -> list[dict]:
    """The tasks that depend on ``task_id``, transitively: its children, dependents and the users of what it
    generated. Arguments, result and errors as for :func:`upstream`."""
    return _walk(store, task_id, "down", depth, match_values, projection)


def tasks_recursive(store, workflow_id: str, max_depth: int = 999, mapping: Mapping[str, str] | None = None
                    ) -> list[dict]:
    """The tasks of a workflow as a ``parent_task_id`` forest, walked in SQL from its roots (reference 3.4).

    Roots are the tasks with no parent in the workflow. Each returned task gains ``depth`` (0 for roots) and
    ``ancestor_ids``: ``[{activity_id: task_id}, ...]`` from its root down to its parent. Tasks deeper than
    ``max_depth`` are left out.

    Args:
        store: the store.
        workflow_id: the workflow; an unknown one gives ``[]``.
        max_depth: the deepest level returned.
        mapping: ``{output key: dotted field}``: return only those fields (plus ``task_id``, ``depth`` and
            ``ancestor_ids``) under the given keys; None returns whole records.

    Returns:
        Records ordered by depth, then ``started_at``, then ``task_id``.
    """
    max_depth = check_limit(max_depth)
    paths = {key: split_path(field) for key, field in (mapping or {}).items()}
    name, ph, doc = _dialect(store)
    if name == "sqlite":
        wf, parent = "json_extract({t}.doc, '$.\"workflow_id\"')", "json_extract({t}.doc, '$.\"parent_task_id\"')"
        plus = "+"  # SQLite's unary plus drops affinity and index use: see below
    else:
        wf, parent, plus = "({t}.doc ->> 'workflow_id')", "({t}.doc ->> 'parent_task_id')", ""
    order, oparams = compile_order_by([("started_at", 1)], store.dialect, tiebreak="t.id")
    # Children are found by the parent_task_id index: on SQLite, +tree.id drops the TEXT affinity that would keep
    # the index off, and + before the workflow test keeps the planner from scanning a whole workflow per tree row.
    sql = (f"WITH RECURSIVE tree(id, depth) AS ("
           f"SELECT r.id, 0 FROM tasks AS r WHERE {wf.format(t='r')} = {ph} AND NOT EXISTS (SELECT 1 FROM tasks AS p "
           f"WHERE p.id = {parent.format(t='r')} AND {wf.format(t='p')} = {ph}) "
           f"UNION ALL SELECT c.id, tree.depth + 1 FROM tree JOIN tasks AS c ON {parent.format(t='c')} = {plus}tree.id "
           f"WHERE tree.depth < {ph} AND {plus}{wf.format(t='c')} = {ph}) "
           f"SELECT {doc}, tree.depth FROM tree JOIN tasks AS t ON t.id = tree.id "
           f"ORDER BY tree.depth, {order.removeprefix(' ORDER BY ').replace('doc', 't.doc')}")
    rows = store.run_sql([(sql, [workflow_id, workflow_id, min(max_depth, _UNLIMITED), workflow_id] + oparams)])
    import orjson

    return _with_ancestors(((orjson.loads(text), depth) for text, depth in rows), paths)


def _with_ancestors(rows, paths: dict) -> list[dict]:
    # Rows come by depth, so a parent's chain is known before its children's.
    activity: dict[Any, Any] = {}
    chains: dict[Any, list] = {}
    result = []
    for task, depth in rows:
        tid, pid = task.get("task_id"), task.get("parent_task_id")
        activity[tid] = task.get("activity_id")
        chain = chains.get(pid, []) + [{activity.get(pid): pid}] if depth else []
        chains[tid] = chain
        if paths:
            task = {"task_id": tid, **{key: get_path(task, path) for key, path in paths.items()}}
        task["depth"] = depth
        task["ancestor_ids"] = chain
        result.append(task)
    return result
