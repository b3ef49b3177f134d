"""Chart data for ``Flowcept.db.resolve_chart_data``: literal rows or columns, or a spec queried from the store,
as one JSON-able shape ``{"x_field", "x", "series"}``.

::

    [{...}, ...]  |  {"rows": [...], "x"?, "y"?}           rows ──┐
    {col: [...]}  |  {"columns": {...}, "x"?, "y"?}     columns ──┼──▶ {"x_field": str | None, "x": [...],
    {"collection", "filter"?, "x"?, "y", "limit"?}  ──query──▶ rows ┘     "series": {name: [...]}}
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping, Sequence

from flowcept.errors import QueryError
from flowcept.store._filters import check_limit, get_path, split_path

__all__ = ["resolve_chart_data", "CHART_COLLECTIONS", "MAX_CHART_POINTS", "MAX_CHART_SERIES"]

#: Collections a chart spec may read (those of ``DBAPI.query``).
CHART_COLLECTIONS = ("tasks", "workflows", "agents", "objects", "object_history")
#: Most points (``limit``) one spec may ask for: a chart is drawn from memory, in a browser too.
MAX_CHART_POINTS = 100_000
#: Most series (``y`` fields) in one chart.
MAX_CHART_SERIES = 100
_SPEC_KEYS = ("collection", "filter", "x", "y", "limit")
_LITERAL_KEYS = ("rows", "columns", "x", "y")
# x axis of a spec that names none: when the record started, or when the object was saved.
_DEFAULT_X = {"objects": "created_at", "object_history": "created_at"}


def resolve_chart_data(query: Callable[..., list[dict]], data: Any, context: Mapping | None = None) -> dict:
    """Chart data from literal data or from a spec queried through ``query`` (``DBAPI.query``).

    Args:
        query: ``DBAPI.query``-like: ``query(filter, projection, limit, sort, collection=...)``.
        data: one of
            * rows: a list of dicts (or ``{"rows": [...], "x": ..., "y": ...}``);
            * columns: a dict of equally long lists (or ``{"columns": {...}, "x": ..., "y": ...}``);
            * a spec: ``{"collection": "tasks", "filter": {...}, "x": "started_at", "y": [...], "limit": 1000}``.

            ``y`` is a field name, a list of them (each names its series) or ``{series name: field}``. In a spec
            fields are dotted paths (``telemetry_at_end.cpu.percent_all``), ``x`` defaults to ``started_at``
            (``created_at`` for objects), ``y`` is required and ``limit`` (default 1000) is 1 to
            :data:`MAX_CHART_POINTS`; in rows and columns they are top-level names, ``x`` defaults to none (the
            row positions 0, 1, ...) and ``y`` to every other column.
        context: for a spec, fields every record must also match (e.g. ``{"workflow_id": wf}``), ANDed with its
            filter, so a chart shown for one workflow cannot show another's tasks. Literal data ignores it.

    Returns:
        ``{"x_field": name or None, "x": [...], "series": {name: [...]}}``, plain JSON values. Rows whose x is
        missing or None are left out; a missing y value is None, so every list has the length of ``x``. In literal
        data NaN and infinities are None too (numpy arrays and pandas Series are columns). Spec results are ordered
        by x (then record id); literal data keeps its order.

    Raises:
        QueryError (a ValueError): the data or spec is malformed (the message names the key and the fix), or its
            filter is (the same checks as every query).
    """
    if context is not None and not isinstance(context, Mapping):
        raise QueryError(f"context must be a dict of fields the records must match (e.g. {{'workflow_id': ...}}), "
                         f"got {type(context).__name__}")
    if isinstance(data, (list, tuple)):
        return _from_rows(data, None, None)
    if not isinstance(data, Mapping):
        raise QueryError("chart data must be a list of rows, a dict of columns, or a spec dict with 'collection' "
                         f"(e.g. {{'collection': 'tasks', 'y': ['telemetry_at_end.cpu.percent_all']}}), "
                         f"got {type(data).__name__}")
    if "collection" in data:
        return _from_spec(query, data, context)
    if "rows" in data or "columns" in data:
        _only_keys(data, _LITERAL_KEYS, "literal chart data")
        if ("rows" in data) == ("columns" in data):
            raise QueryError("chart data: give either 'rows' or 'columns', not both")
        if "rows" in data:
            return _from_rows(data["rows"], data.get("x"), data.get("y"))
        return _from_columns(data["columns"], data.get("x"), data.get("y"))
    return _from_columns(data, None, None)


def _only_keys(data: Mapping, allowed: Sequence[str], what: str) -> None:
    unknown = [k for k in data if k not in allowed]
    if unknown:
        raise QueryError(f"{what}: unknown key {unknown[0]!r}; allowed keys: {', '.join(allowed)}")


def _series(y: Any, what: str) -> dict[str, str]:
    """``y`` as ``{series name: field}``."""
    if isinstance(y, str):
        y = [y]
    if isinstance(y, Mapping):
        pairs = list(y.items())
    elif isinstance(y, (list, tuple)):
        pairs = [(f, f) for f in y]
    else:
        raise QueryError(f"{what}: 'y' must be a field name, a list of them or {{series name: field}}, "
                         f"got {type(y).__name__}")
    if not pairs:
        raise QueryError(f"{what}: 'y' names no field; give at least one, e.g. ['telemetry_at_end.cpu.percent_all']")
    if len(pairs) > MAX_CHART_SERIES:
        raise QueryError(f"{what}: 'y' names {len(pairs)} fields; at most {MAX_CHART_SERIES} series per chart")
    for name, field in pairs:
        if not isinstance(name, str) or not isinstance(field, str) or not field:
            raise QueryError(f"{what}: each 'y' entry must be a field name (a non-empty string), got {field!r}")
    return dict(pairs)


def _from_spec(query: Callable[..., list[dict]], spec: Mapping, context: Mapping | None) -> dict:
    _only_keys(spec, _SPEC_KEYS, "chart spec")
    collection = spec["collection"]
    if collection not in CHART_COLLECTIONS:
        raise QueryError(f"chart spec: unknown collection {collection!r}; collections: {', '.join(CHART_COLLECTIONS)}")
    x = spec.get("x")
    if x is None:
        x = _DEFAULT_X.get(collection, "started_at")
    x_path = split_path(x)  # QueryError naming a bad path
    if spec.get("y") is None:
        raise QueryError("chart spec: 'y' is required: the fields to plot, e.g. ['telemetry_at_end.cpu.percent_all']")
    series = _series(spec["y"], "chart spec")
    paths = {field: split_path(field) for field in series.values()}
    limit = check_limit(spec.get("limit", 1000))
    if not 1 <= limit <= MAX_CHART_POINTS:
        raise QueryError(f"chart spec: 'limit' must be 1 to {MAX_CHART_POINTS} points, got {limit}; narrow the "
                         "filter or sample the data instead")
    flt = spec.get("filter")
    if flt is not None and not isinstance(flt, Mapping):
        raise QueryError(f"chart spec: 'filter' must be a dict (a query filter), got {type(flt).__name__}")
    parts = [dict(context)] if context else []
    parts += [dict(flt)] if flt else []
    parts.append({x: {"$ne": None}})  # rows without an x are left out, in the database
    docs = query({"$and": parts}, [x, *paths], limit, [(x, 1)], collection=collection)
    xs: list = []
    out: dict[str, list] = {name: [] for name in series}
    for doc in docs:
        xv = get_path(doc, x_path)
        if xv is None:
            continue
        xs.append(xv)
        for name, field in series.items():
            out[name].append(get_path(doc, paths[field]))
    return {"x_field": x, "x": xs, "series": out}


def _from_rows(rows: Any, x: Any, y: Any) -> dict:
    if not isinstance(rows, (list, tuple)):
        raise QueryError(f"chart data: 'rows' must be a list of dicts, got {type(rows).__name__}")
    names: dict[str, None] = {}
    for i, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise QueryError(f"chart data: row {i} is a {type(row).__name__}; every row must be a dict")
        names.update(dict.fromkeys(row))
    return _chart({name: [row.get(name) for row in rows] for name in names}, len(rows), x, y)


def _from_columns(columns: Any, x: Any, y: Any) -> dict:
    if isinstance(columns, Mapping):
        # numpy arrays and pandas Series have tolist(); a string or a scalar is not a column
        columns = {name: v.tolist() if callable(getattr(v, "tolist", None)) else v for name, v in columns.items()}
    if not isinstance(columns, Mapping) or not all(isinstance(v, (list, tuple)) for v in columns.values()):
        raise QueryError("chart data: a dict without 'collection' must map column names to lists of values, e.g. "
                         "{'epoch': [1, 2], 'loss': [0.9, 0.5]}; for a query give 'collection'")
    lengths = {name: len(values) for name, values in columns.items()}
    if len(set(lengths.values())) > 1:
        raise QueryError(f"chart data: columns differ in length ({lengths}); give every column one value per point")
    return _chart({name: list(values) for name, values in columns.items()}, next(iter(lengths.values()), 0), x, y)


def _chart(columns: dict[str, list], n: int, x: Any, y: Any) -> dict:
    from flowcept.serialize import sanitize

    if x is not None and x not in columns:
        raise QueryError(f"chart data: x column {x!r} is not in the data (columns: {', '.join(map(str, columns))})")
    series = _series(y, "chart data") if y is not None else {name: name for name in columns if name != x}
    missing = [field for field in series.values() if field not in columns]
    if missing:
        raise QueryError(f"chart data: y column {missing[0]!r} is not in the data "
                         f"(columns: {', '.join(map(str, columns))})")
    keep = range(n) if x is None else [i for i in range(n) if _point(columns[x][i]) is not None]
    return sanitize({"x_field": x, "x": list(keep) if x is None else [columns[x][i] for i in keep],
                     "series": {name: [_point(columns[field][i]) for i in keep] for name, field in series.items()}})


def _point(value: Any) -> Any:
    # NaN and infinities are gaps in a chart (JSON has no such numbers; stored records hold them as strings).
    return None if isinstance(value, float) and not math.isfinite(value) else value
