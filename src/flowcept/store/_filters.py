"""Mongo-style filters, sorts, projections and aggregations compiled to parametrized SQL over a JSON ``doc`` column.

::

    {"generated.loss": {"$lt": 0.5}, "tags": "math"}
        │ compile_filter(filter, dialect)
        ▼
    (where_sql, params)        values are always bound parameters; path segments are validated
        │                      (SQLite inlines the validated JSON path so expression indexes apply,
        ▼                       PostgreSQL binds it as a text[] parameter)
    SQLITE:   json_type / json_extract / json_each on a TEXT column
    POSTGRES: jsonb_typeof / #> / jsonb_array_elements on a JSONB column

Semantics follow MongoDB where both databases can agree:
    * type bracketing: numbers compare with numbers, strings with strings (byte order), booleans with booleans;
      ``{"x": {"$gt": 1}}`` never matches a string;
    * a field holding an array matches when the array equals the value or when any element matches
      (``{"tags": "math"}`` matches ``["math", "demo"]``), for ``$eq $ne $in $nin $gt $gte $lt $lte $regex``;
    * ``{"x": None}`` matches a null or missing ``x``; ``$ne``/``$nin``/``$not``/``$nor`` match missing fields;
    * a dotted path walks nested objects; an all-digit segment indexes an array (or names an object key).

The top-level id, status and time fields in :data:`SCALAR_FIELDS` are taken to never hold arrays, so equality and
ranges on them compile to plain comparisons the SQLite expression indexes can serve.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any, Callable, Mapping, Sequence

import orjson

from flowcept.errors import QueryError

__all__ = [
    "SQLITE", "POSTGRES", "SUPPORTED_OPERATORS", "SCALAR_FIELDS", "AGGREGATION_OPS",
    "compile_filter", "compile_order_by", "normalize_sort", "normalize_projection", "apply_projection",
    "compile_aggregate", "split_path", "aggregation_key", "group_sort_key",
    "order_groups",
]

LOGICAL_OPERATORS = ("$and", "$or", "$nor")
FIELD_OPERATORS = ("$not", "$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$exists", "$regex")
SUPPORTED_OPERATORS = LOGICAL_OPERATORS + FIELD_OPERATORS + ("$options",)
AGGREGATION_OPS = ("avg", "sum", "min", "max", "count")

#: Top-level fields assumed scalar (never arrays): equality and ranges on them skip the array-element branch.
SCALAR_FIELDS = frozenset(
    {"task_id", "workflow_id", "campaign_id", "parent_task_id", "activity_id", "status", "agent_id", "type",
     "started_at", "ended_at", "registered_at", "utc_timestamp"})

# What a path segment may not hold: SQLite's JSON path cannot quote a double quote inside a key, and reads a
# backslash as the key's JSON escape (so "k\z" would silently match nothing); no store keeps control characters
# (PostgreSQL refuses NUL). Anything else (":" in the "object:<id>" keys this package writes,
# spaces, non-ASCII letters) is a key like any other; SQLite's paths are quoted and escaped (SqliteDialect.json_path).
_BAD_SEGMENT = re.compile(r'["\\\x00-\x1f\x7f]')

#: Hostile-input bounds: operators nested deeper than this, or more operator nodes than this in one filter, are a
#: QueryError (a 2,000-deep ``$and`` would otherwise exhaust Python's stack or SQLite's expression depth).
MAX_FILTER_DEPTH = 64
MAX_FILTER_NODES = 10_000
#: Longest ``$regex`` pattern accepted (characters).
MAX_REGEX_LENGTH = 1_000
#: Most regular expressions inside one ``$in``/``$nin`` (each is its own predicate; plain values are unlimited).
MAX_IN_PATTERNS = 100
#: Largest ``limit`` (SQL's BIGINT).
MAX_LIMIT = 2 ** 63 - 1
_CMP_SQL = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}


def _unknown(op: str) -> QueryError:
    return QueryError(f"unknown query operator {op!r}; supported operators: {', '.join(SUPPORTED_OPERATORS)}")


def split_path(field: Any) -> tuple[str, ...]:
    """Validate a dotted field path and return its segments.

    Raises:
        QueryError: the path is not a string, is empty, has an empty segment, a segment starting with ``$`` (an
            operator) or one holding a double quote, a backslash or a control character.
    """
    if not isinstance(field, str) or not field:
        raise QueryError(f"field path must be a non-empty string, got {field!r}")
    segments = tuple(field.split("."))
    for seg in segments:
        if seg.startswith("$"):
            raise _unknown(seg)
        if not seg or _BAD_SEGMENT.search(seg):
            raise QueryError(f"invalid field path {field!r}: segment {seg!r} must be non-empty and hold no double "
                             "quote, backslash or control character")
    return segments


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float, Decimal)) and not isinstance(v, bool)


# --------------------------------------------------------------------------------------------------- dialects


class _Dialect:
    """What differs between SQL databases; the compiler above it is shared."""

    name = "abstract"
    placeholder = "?"

    # Type tests -------------------------------------------------------------------------------------------
    def is_kind(self, o, kind: str) -> tuple[str, list]:
        raise NotImplementedError

    def exists(self, o) -> tuple[str, list]:
        raise NotImplementedError

    def cmp_number(self, o, op: str, value) -> tuple[str, list]:
        raise NotImplementedError

    def cmp_string(self, o, op: str, value: str) -> tuple[str, list]:
        raise NotImplementedError

    def eq_json(self, o, value) -> tuple[str, list]:
        raise NotImplementedError

    def regex(self, o, pattern: str, icase: bool) -> tuple[str, list]:
        raise NotImplementedError

    def in_values(self, o, kind: str, values: list) -> tuple[str, list]:
        """``o`` equals one of ``values``, all of one ``kind`` (string, number or json), bound as one parameter."""
        raise NotImplementedError

    def field(self, path: tuple[str, ...]):
        raise NotImplementedError

    def any_element(self, path: tuple[str, ...], pred: Callable[[Any], tuple[str, list]]) -> tuple[str, list]:
        raise NotImplementedError

    def sort_keys(self, path: tuple[str, ...]) -> list[tuple[str, list]]:
        raise NotImplementedError

    def group_select(self, path: tuple[str, ...]) -> list[tuple[str, list]]:
        raise NotImplementedError

    def decode_group(self, values: Sequence) -> Any:
        raise NotImplementedError

    def number_value(self, o) -> tuple[str, list]:
        raise NotImplementedError

    def text_value(self, o) -> tuple[str, list]:
        """SQL text of a string field, NULL when it is missing or not a string."""
        raise NotImplementedError


class SqliteDialect(_Dialect):
    """SQLite JSON1 over ``doc TEXT``; the validated path is inlined as a literal so expression indexes match."""

    name = "sqlite"
    placeholder = "?"
    _KIND = {"number": ("integer", "real"), "string": ("text",), "bool": ("true", "false"), "true": ("true",),
             "false": ("false",), "null": ("null",), "array": ("array",), "object": ("object",)}

    @staticmethod
    def json_path(path: tuple[str, ...]) -> str:
        """SQL expression of the JSON path: a literal, unless a segment is all digits. Each key is quoted in the path
        (``$."a b"``) and the SQL literal escapes its single quotes (split_path refuses double quotes)."""
        pieces: list[str] = []
        literal = "$"
        for seg in path:
            if seg.isascii() and seg.isdigit():
                pieces.append(f"'{literal}'")
                literal = ""
                prefix = pieces[0] if len(pieces) == 1 else "(" + " || ".join(pieces) + ")"
                # An all-digit segment indexes an array, or names a key of an object (as PostgreSQL's #> does).
                pieces.append(f"CASE json_type(doc, {prefix}) WHEN 'array' THEN '[{seg}]' ELSE '.\"{seg}\"' END")
            else:
                literal += '."' + seg.replace("'", "''") + '"'
        if not pieces:
            return f"'{literal}'"
        if literal:
            pieces.append(f"'{literal}'")
        return "(" + " || ".join(pieces) + ")"

    def field(self, path):
        p = self.json_path(path)
        return {"type": f"json_type(doc, {p})", "value": f"json_extract(doc, {p})", "path": p}

    def _elem(self, alias: str):
        return {"type": f"{alias}.type", "value": f"{alias}.value"}

    def is_kind(self, o, kind):
        names = self._KIND[kind]
        if len(names) == 1:
            return f"{o['type']} = '{names[0]}'", []
        return f"{o['type']} IN ({', '.join(repr(n) for n in names)})", []

    def exists(self, o):
        return f"{o['type']} IS NOT NULL", []

    def cmp_number(self, o, op, value):
        return f"({o['type']} IN ('integer', 'real') AND {o['value']} {op} ?)", [_sqlite_number(value)]

    def cmp_string(self, o, op, value):
        # Equality first so the expression index on json_extract(doc, path) serves "field = ?".
        return f"({o['value']} {op} ? AND {o['type']} = 'text')", [value]

    def eq_json(self, o, value):
        kind = "object" if isinstance(value, dict) else "array"
        return f"({o['type']} = '{kind}' AND {o['value']} = json(?))", [_json_array(value)]

    def regex(self, o, pattern, icase):
        if not icase:
            literal = _literal_of(pattern.removeprefix("^"))
            if literal is not None:
                # Patterns SQL can answer run in SQL, without the bounded Python callback: a literal as instr(),
                # an anchored literal as a GLOB prefix.
                if pattern.startswith("^"):
                    glob = "".join(f"[{c}]" if c in "*?[" else c for c in literal) + "*"
                    return f"({o['type']} = 'text' AND {o['value']} GLOB ?)", [glob]
                return f"({o['type']} = 'text' AND instr({o['value']}, ?) > 0)", [literal]
        return f"({o['type']} = 'text' AND {o['value']} REGEXP ?)", [("(?i)" if icase else "") + pattern]

    def in_values(self, o, kind, values):
        if kind == "string":
            # Value first so the expression index on json_extract(doc, path) serves it.
            return f"({o['value']} IN (SELECT value FROM json_each(?)) AND {o['type']} = 'text')", [_json_array(values)]
        if kind == "number":
            return (f"({o['type']} IN ('integer', 'real') AND {o['value']} IN (SELECT value FROM json_each(?)))",
                    [_json_array([_sqlite_number(v) for v in values])])
        return (f"({o['type']} IN ('object', 'array') AND {o['value']} IN "
                f"(SELECT value FROM json_each(?) WHERE type IN ('object', 'array')))", [_json_array(values)])

    def any_element(self, path, pred):
        p = self.json_path(path)
        inner, params = pred(self._elem("_e"))
        return (f"(json_type(doc, {p}) = 'array' AND EXISTS (SELECT 1 FROM json_each(doc, {p}) AS _e "
                f"WHERE {inner}))"), params

    def number_value(self, o):
        return f"CASE WHEN {o['type']} IN ('integer', 'real') THEN {o['value']} END", []

    def text_value(self, o):
        return f"CASE WHEN {o['type']} = 'text' THEN {o['value']} END", []

    def sort_keys(self, path):
        o = self.field(path)
        rank = (f"CASE {o['type']} WHEN 'integer' THEN 1 WHEN 'real' THEN 1 WHEN 'text' THEN 2 WHEN 'object' THEN 3 "
                f"WHEN 'array' THEN 4 WHEN 'false' THEN 5 WHEN 'true' THEN 6 ELSE 0 END")
        return [(rank, []), (o["value"], [])]

    def group_select(self, path):
        # Group by (type rank, value) so 1 and "1" differ but 1 and 1.0 agree, as in PostgreSQL's jsonb equality.
        rank, value = self.sort_keys(path)
        return [rank, value]

    def decode_group(self, values):
        rank, value = values
        if rank == 0:
            return None
        if rank in (5, 6):
            return rank == 6
        if rank in (3, 4):
            return orjson.loads(value)
        return value


_REGEX_META = frozenset(".^$*+?{}[]|()\\")


def _literal_of(pattern: str) -> str | None:
    """The text a regular expression matches literally (escaped punctuation allowed), or None if it is not one."""
    out = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            if i + 1 < len(pattern) and not pattern[i + 1].isalnum() and pattern[i + 1] not in " \t\n":
                out.append(pattern[i + 1])
                i += 2
                continue
            return None
        if c in _REGEX_META:
            return None
        out.append(c)
        i += 1
    return "".join(out) if out else None


def _json_array(values: list) -> str:
    try:
        return orjson.dumps(values).decode()
    except (TypeError, orjson.JSONEncodeError) as exc:
        raise QueryError(f"cannot use these values in a query: {exc}") from exc


def _sqlite_number(value):
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, int) and not -(2 ** 63) <= value < 2 ** 63:
        return float(value)
    return value


_PY_GLOBAL_FLAGS = re.compile(r"(?:\(\?[aiLmsux]+\))+")
# Python's leading global flags as PostgreSQL embedded options (one group, at the very start, is all PostgreSQL
# takes). "m" is PostgreSQL's "w": ^ and $ at line breaks while "." and [^...] still match a newline; "s" and "u" are
# what the translation below does by default. Other letters pass through, and PostgreSQL rejects them (QueryError).
_PG_OPTIONS = {"i": "i", "x": "x", "m": "w", "s": "", "u": ""}


def _postgres_regex(pattern: str) -> str:
    """A Python (and MongoDB PCRE) regular expression as a PostgreSQL ARE with the same matches.

    The two read some tokens differently: ``\\b``/``\\B`` are word boundaries in Python but a backspace and an
    error in PostgreSQL (its ``\\y``/``\\Y``); ``.`` matches a newline in PostgreSQL, not in Python without
    ``(?s)``; ``$`` also matches before a final newline in Python without ``(?m)``. Bracket expressions are copied
    as they are (``[^x]`` matches a newline in both; ``[\\b]`` is a backspace in both), and so is everything else.
    """
    lead = _PY_GLOBAL_FLAGS.match(pattern)
    flags = set(lead.group().replace("(?", "").replace(")", "")) if lead else set()
    body = pattern[lead.end():] if lead else pattern
    options = "".join(sorted({_PG_OPTIONS.get(f, f) for f in flags} - {""}))
    out = [f"(?{options})"] if options else []
    i, n = 0, len(body)
    while i < n:
        c = body[i]
        if c == "\\":  # an escape is two characters: an escaped backslash before "b" leaves that "b" alone
            nxt = body[i + 1:i + 2]
            out.append({"b": "\\y", "B": "\\Y"}.get(nxt, c + nxt))
            i += 2
            continue
        if c == "[":  # up to the first unescaped "]" not in first place, as Python reads a set
            j = i + 1
            j += body.startswith("^", j)
            j += body.startswith("]", j)
            while j < n and body[j] != "]":
                j += 2 if body[j] == "\\" else 1
            out.append(body[i:j + 1])
            i = j + 1
            continue
        if c == "." and "s" not in flags:
            out.append("[^\\n]")
        elif c == "$" and "m" not in flags:
            out.append("(?=\\n?$)")
        else:
            out.append(c)
        i += 1
    return "".join(out)


class PostgresDialect(_Dialect):
    """PostgreSQL JSONB ``doc``; paths are bound as ``text[]`` parameters, casts are guarded by CASE."""

    name = "postgres"
    placeholder = "%s"
    _KIND = {"number": ("number",), "string": ("string",), "bool": ("boolean",), "null": ("null",),
             "array": ("array",), "object": ("object",)}

    def field(self, path):
        # The path is repeated as a fresh parameter at each use; psycopg binds positionally.
        return {"x": "(doc #> %s::text[])", "xp": [list(path)]}

    def _elem(self, alias):
        return {"x": f"{alias}.v", "xp": []}

    @staticmethod
    def _x(o):
        return o["x"], list(o["xp"])

    def is_kind(self, o, kind):
        x, p = self._x(o)
        if kind in ("true", "false"):
            return f"(jsonb_typeof({x}) = 'boolean' AND ({x} #>> '{{}}') = '{kind}')", p + p
        names = self._KIND[kind]
        return f"jsonb_typeof({x}) = '{names[0]}'", p

    def exists(self, o):
        x, p = self._x(o)
        return f"{x} IS NOT NULL", p

    def cmp_number(self, o, op, value):
        x, p = self._x(o)
        # Bound as text: a float bound as float8 is cast to numeric with 15 digits only, so a timestamp such as
        # 1796092392.4545379 would compare equal to its neighbours (a paging cursor then repeats or skips records).
        return (f"CASE WHEN jsonb_typeof({x}) = 'number' THEN ({x})::numeric {op} %s::numeric ELSE FALSE END",
                p + p + [repr(value) if isinstance(value, float) else str(value)])

    def cmp_string(self, o, op, value):
        x, p = self._x(o)
        return (f"(jsonb_typeof({x}) = 'string' AND ({x} #>> '{{}}') COLLATE \"C\" {op} %s)", p + p + [value])

    def eq_json(self, o, value):
        # jsonb equality ignores object key order, which SQLite's text comparison does not; documents compared
        # whole are built by the same code, so their key order agrees in practice.
        x, p = self._x(o)
        return f"({x} = %s::jsonb)", p + [_json_array(value)]

    def regex(self, o, pattern, icase):
        x, p = self._x(o)
        op = "~*" if icase else "~"
        return f"(jsonb_typeof({x}) = 'string' AND ({x} #>> '{{}}') {op} %s)", p + p + [_postgres_regex(pattern)]

    def in_values(self, o, kind, values):
        x, p = self._x(o)
        if kind == "string":
            return f"(jsonb_typeof({x}) = 'string' AND ({x} #>> '{{}}') = ANY(%s::text[]))", p + p + [list(values)]
        if kind == "number":
            return (f"CASE WHEN jsonb_typeof({x}) = 'number' THEN ({x})::numeric = ANY(%s::text[]::numeric[]) "
                    f"ELSE FALSE END", p + p + [[str(v) for v in values]])
        return f"({x} IN (SELECT jsonb_array_elements(%s::jsonb)))", p + [_json_array(values)]

    def any_element(self, path, pred):
        o = self.field(path)
        x, p = self._x(o)
        inner, params = pred(self._elem("_e"))
        return (f"CASE WHEN jsonb_typeof({x}) = 'array' THEN EXISTS (SELECT 1 FROM jsonb_array_elements({x}) "
                f"AS _e(v) WHERE {inner}) ELSE FALSE END"), p + p + params

    def number_value(self, o):
        x, p = self._x(o)
        return f"CASE WHEN jsonb_typeof({x}) = 'number' THEN ({x})::numeric END", p + p

    def text_value(self, o):
        x, p = self._x(o)
        return f"CASE WHEN jsonb_typeof({x}) = 'string' THEN ({x} #>> '{{}}') END", p + p

    def sort_keys(self, path):
        o = self.field(path)
        x, p = self._x(o)
        rank = (f"CASE jsonb_typeof({x}) WHEN 'number' THEN 1 WHEN 'string' THEN 2 WHEN 'object' THEN 3 "
                f"WHEN 'array' THEN 4 WHEN 'boolean' THEN (CASE WHEN ({x} #>> '{{}}') = 'true' THEN 6 ELSE 5 END) "
                f"ELSE 0 END")
        return [
            (rank, p + p),
            (f"CASE WHEN jsonb_typeof({x}) = 'number' THEN ({x})::numeric END", p + p),
            (f"CASE WHEN jsonb_typeof({x}) = 'string' THEN ({x} #>> '{{}}') END COLLATE \"C\"", p + p),
            (f"CASE WHEN jsonb_typeof({x}) IN ('object', 'array') THEN {x} END", p + p),
        ]

    def group_select(self, path):
        o = self.field(path)
        return [(o["x"], list(o["xp"]))]

    def decode_group(self, values):
        return _plain_number(values[0])


SQLITE = SqliteDialect()
POSTGRES = PostgresDialect()


def plain_number(v):
    """A database number as a Python int or float (PostgreSQL's numeric comes back as Decimal), recursively."""
    return _plain_number(v)


def _plain_number(v):
    if isinstance(v, Decimal):
        return int(v) if v.as_tuple().exponent >= 0 else float(v)
    if isinstance(v, list):
        return [_plain_number(x) for x in v]
    if isinstance(v, dict):
        return {k: _plain_number(x) for k, x in v.items()}
    return v


def group_sort_key(value: Any) -> tuple:
    """Python sort key for group values, in the same type order as :func:`compile_order_by`."""
    if value is None:
        return (0, 0)
    if isinstance(value, bool):
        return (6 if value else 5, 0)
    if _is_number(value):
        return (1, value)
    if isinstance(value, str):
        return (2, value)
    return (3 if isinstance(value, dict) else 4, orjson.dumps(value, option=orjson.OPT_SORT_KEYS))


# --------------------------------------------------------------------------------------------------- compiler


def _join(parts: list[tuple[str, list]], op: str) -> tuple[str, list]:
    # Balanced: a flat "a OR b OR ..." of n terms parses into an n-deep tree, and SQLite refuses expressions
    # deeper than 1,000 ("Expression tree is too large"); halves keep the depth at log2(n).
    if len(parts) > 8:
        mid = len(parts) // 2
        parts = [_join(parts[:mid], op), _join(parts[mid:], op)]
    sql = f" {op} ".join(f"({s})" for s, _ in parts)
    params: list = []
    for _, p in parts:
        params.extend(p)
    return f"({sql})", params


def check_shape(filter: Any) -> None:
    """Refuse filters nested deeper than :data:`MAX_FILTER_DEPTH` or larger than :data:`MAX_FILTER_NODES`.

    Walks dicts and lists iteratively (a hostile filter cannot exhaust the stack here). Every dict entry and
    every list inside a list counts as a node; scalars inside lists (``$in`` values) do not.

    Raises:
        QueryError: naming the bound that was passed.
    """
    stack = [(filter, 1)]
    nodes = 0
    while stack:
        value, depth = stack.pop()
        if depth > MAX_FILTER_DEPTH:
            raise QueryError(f"filter is nested more than {MAX_FILTER_DEPTH} levels deep (dicts and lists inside "
                             "each other); flatten it, e.g. one $and with many entries instead of nested ones")
        if isinstance(value, Mapping):
            nodes += len(value)
            stack.extend((v, depth + 1) for v in value.values() if isinstance(v, (Mapping, list, tuple)))
        else:
            for v in value:
                if isinstance(v, (Mapping, list, tuple)):
                    nodes += not isinstance(v, Mapping)  # a dict counts by its entries
                    stack.append((v, depth + 1))
        if nodes > MAX_FILTER_NODES:
            raise QueryError(f"filter has more than {MAX_FILTER_NODES} operators and fields; split the query or "
                             "use $in with a list of values (any length) instead of many $or branches")


def _negate(part: tuple[str, list]) -> tuple[str, list]:
    # Leaves may yield SQL NULL for "no match" (missing field); NOT NULL is NULL, so coalesce before negating.
    return f"NOT COALESCE(({part[0]}), FALSE)", part[1]


def _no_nul(text: str) -> str:
    """``text``, or a QueryError when it holds NUL: SQLite compares such strings in no defined way and PostgreSQL
    keeps NUL as U+FFFD, so no store could answer the same."""
    if "\x00" in text:
        raise QueryError(f"cannot compare with a string holding NUL (\\x00): {text!r}; match the text around it "
                         "with $regex instead")
    return text


def _value_pred(d: _Dialect, o, op: str, value: Any) -> tuple[str, list]:
    """Predicate on one JSON value (field or array element) without the array-element expansion."""
    if isinstance(value, str):
        _no_nul(value)
    if op == "$eq":
        if value is None:
            return d.is_kind(o, "null")
        if isinstance(value, bool):
            return d.is_kind(o, "true" if value else "false")
        if _is_number(value):
            return d.cmp_number(o, "=", value)
        if isinstance(value, str):
            return d.cmp_string(o, "=", value)
        if isinstance(value, (dict, list, tuple)):
            return d.eq_json(o, list(value) if isinstance(value, tuple) else value)
        raise QueryError(f"cannot compare with a value of type {type(value).__name__}: {value!r}")
    if op in _CMP_SQL:
        sql_op = _CMP_SQL[op]
        if _is_number(value):
            return d.cmp_number(o, sql_op, value)
        if isinstance(value, str):
            return d.cmp_string(o, sql_op, value)
        if isinstance(value, bool):
            # Booleans order false < true among themselves.
            allowed = [b for b in (False, True) if _py_cmp(op, b, value)]
            if not allowed:
                return "FALSE", []
            if len(allowed) == 2:
                return d.is_kind(o, "bool")
            return d.is_kind(o, "true" if allowed[0] else "false")
        if value is None:
            return d.is_kind(o, "null") if op in ("$gte", "$lte") else ("FALSE", [])
        raise QueryError(f"{op} needs a number, string, boolean or null, got {type(value).__name__}")
    if op == "$regex":
        pattern, icase = value
        return d.regex(o, pattern, icase)
    if op.startswith("$in:"):
        return d.in_values(o, op[4:], value)
    raise _unknown(op)


def _py_cmp(op, a, b):
    return {"$gt": a > b, "$gte": a >= b, "$lt": a < b, "$lte": a <= b}[op]


def _field_pred(d: _Dialect, path: tuple[str, ...], op: str, value: Any) -> tuple[str, list]:
    """Predicate on a field, matching the field itself or (Mongo style) any element of an array field."""
    o = d.field(path)
    direct = _value_pred(d, o, op, value)
    if value is None and op == "$eq":
        direct = _join([direct, _negate(d.exists(o))], "OR")
    if (len(path) == 1 and path[0] in SCALAR_FIELDS and (op == "$eq" or op in _CMP_SQL or op.startswith("$in:"))
            and value is not None):
        return direct
    elem = d.any_element(path, lambda e: _value_pred(d, e, op, value))
    return _join([direct, elem], "OR")


def _in_pred(d: _Dialect, path: tuple[str, ...], values) -> tuple[str, list]:
    """``$in``: any number of values as one JSON array parameter per kind (no expression per value)."""
    if not values:
        return "FALSE", []
    groups: dict[str, list] = {"string": [], "number": [], "json": []}
    parts: list[tuple[str, list]] = []
    patterns = [v for v in values if isinstance(v, re.Pattern)]
    if len(patterns) > MAX_IN_PATTERNS:
        raise QueryError(f"$in/$nin holds {len(patterns)} regular expressions; at most {MAX_IN_PATTERNS} are "
                         "accepted (plain values are unlimited)")
    seen_bool: set[bool] = set()
    has_none = False
    for v in values:
        if isinstance(v, re.Pattern):
            continue
        if v is None:
            has_none = True
        elif isinstance(v, bool):
            seen_bool.add(v)
        elif _is_number(v):
            groups["number"].append(v)
        elif isinstance(v, str):
            groups["string"].append(_no_nul(v))
        elif isinstance(v, (dict, list, tuple)):
            groups["json"].append(list(v) if isinstance(v, tuple) else v)
        else:
            raise QueryError(f"cannot compare with a value of type {type(v).__name__}: {v!r}")
    for kind, members in groups.items():
        if members:
            parts.append(_field_pred(d, path, "$in:" + kind, members))
    for b in sorted(seen_bool):
        parts.append(_field_pred(d, path, "$eq", b))
    if has_none:
        parts.append(_field_pred(d, path, "$eq", None))
    parts.extend(_field_pred(d, path, "$regex", _regex_value({}, p)) for p in patterns)
    return parts[0] if len(parts) == 1 else _join(parts, "OR")


def _regex_value(spec: Mapping, op_value: Any) -> tuple[str, bool]:
    options = spec.get("$options", "")
    if isinstance(op_value, re.Pattern):
        icase = bool(op_value.flags & re.IGNORECASE)
        op_value = op_value.pattern
    else:
        icase = False
    if not isinstance(op_value, str):
        raise QueryError(f"$regex needs a string pattern, got {type(op_value).__name__}")
    if len(op_value) > MAX_REGEX_LENGTH:
        raise QueryError(f"$regex pattern is {len(op_value)} characters long; at most {MAX_REGEX_LENGTH} are "
                         "accepted")
    if not isinstance(options, str) or set(options) - {"i"}:
        raise QueryError(f"$options {options!r} not supported; only 'i' (case-insensitive) is")
    try:
        re.compile(op_value)
    except re.error as exc:
        raise QueryError(f"invalid $regex {op_value!r}: {exc}") from exc
    return op_value, icase or "i" in options


def _is_operator_dict(value: Any) -> bool:
    if not isinstance(value, Mapping) or not value:
        return False
    keys = [k for k in value]
    dollar = [isinstance(k, str) and k.startswith("$") for k in keys]
    if any(dollar) and not all(dollar):
        raise QueryError(f"cannot mix operators and fields in {dict(value)!r}")
    return all(dollar)


def _compile_ops(d: _Dialect, path: tuple[str, ...], spec: Mapping) -> tuple[str, list]:
    parts: list[tuple[str, list]] = []
    for op, arg in spec.items():
        if op == "$options":
            if "$regex" not in spec:
                raise QueryError("$options is only valid next to $regex")
            continue
        if op in ("$eq", "$gt", "$gte", "$lt", "$lte"):
            if isinstance(arg, re.Pattern) and op == "$eq":
                parts.append(_field_pred(d, path, "$regex", _regex_value({}, arg)))
            else:
                parts.append(_field_pred(d, path, op, arg))
        elif op == "$ne":
            parts.append(_negate(_field_pred(d, path, "$eq", arg)))
        elif op in ("$in", "$nin"):
            if not isinstance(arg, (list, tuple, set, frozenset)):
                raise QueryError(f"{op} needs a list, got {type(arg).__name__}")
            alts = _in_pred(d, path, arg)
            parts.append(alts if op == "$in" else _negate(alts))
        elif op == "$exists":
            ex = d.exists(d.field(path))
            parts.append(ex if arg else _negate(ex))
        elif op == "$regex":
            parts.append(_field_pred(d, path, "$regex", _regex_value(spec, arg)))
        elif op == "$not":
            if isinstance(arg, re.Pattern):
                inner = _field_pred(d, path, "$regex", _regex_value({}, arg))
            elif isinstance(arg, Mapping) and _is_operator_dict(arg):
                inner = _compile_ops(d, path, arg)
            else:
                raise QueryError("$not needs an operator dict (e.g. {'$gt': 1}) or a compiled regex")
            parts.append(_negate(inner))
        else:
            raise _unknown(op)
    if not parts:
        raise QueryError(f"empty operator dict for field {'.'.join(path)!r}")
    return parts[0] if len(parts) == 1 else _join(parts, "AND")


def _compile(d: _Dialect, flt: Mapping) -> tuple[str, list]:
    if not isinstance(flt, Mapping):
        raise QueryError(f"a filter must be a dict, got {type(flt).__name__}")
    parts: list[tuple[str, list]] = []
    for key, value in flt.items():
        if isinstance(key, str) and key.startswith("$"):
            if key not in LOGICAL_OPERATORS:
                raise _unknown(key)
            if not isinstance(value, (list, tuple)) or not value:
                raise QueryError(f"{key} needs a non-empty list of filters")
            subs = [_compile(d, sub) for sub in value]
            if key == "$and":
                parts.append(_join(subs, "AND"))
            elif key == "$or":
                parts.append(_join(subs, "OR"))
            else:
                parts.append(_negate(_join(subs, "OR")))
            continue
        path = split_path(key)
        if isinstance(value, re.Pattern):
            parts.append(_field_pred(d, path, "$regex", _regex_value({}, value)))
        elif _is_operator_dict(value):
            parts.append(_compile_ops(d, path, value))
        else:
            parts.append(_field_pred(d, path, "$eq", dict(value) if isinstance(value, Mapping) else value))
    if not parts:
        return "TRUE", []
    return parts[0] if len(parts) == 1 else _join(parts, "AND")


def compile_filter(filter: Mapping | None, dialect: _Dialect = SQLITE) -> tuple[str, list]:
    """Compile a Mongo-style filter into a WHERE expression and its parameters.

    Args:
        filter: the filter dict; None or ``{}`` match everything.
        dialect: :data:`SQLITE` or :data:`POSTGRES`.

    Returns:
        ``(sql, params)`` for ``... WHERE {sql}``, with the dialect's placeholders.

    Raises:
        QueryError: unknown operator, invalid path or a value of the wrong type.
    """
    if filter is None:
        return "TRUE", []
    if not isinstance(filter, Mapping):
        raise QueryError(f"a filter must be a dict, got {type(filter).__name__}")
    check_shape(filter)
    return _compile(dialect, filter)


# --------------------------------------------------------------------------------------------------- sort


def normalize_sort(sort: Any) -> list[tuple[str, int]]:
    """Turn a sort spec (list of ``(field, 1|-1)``, one such tuple, ``{field: dir}`` or a field name) into a list.

    Raises:
        QueryError: a direction other than 1/-1 or a malformed spec.
    """
    if sort is None:
        return []
    if isinstance(sort, str):
        items = [(sort, 1)]
    elif isinstance(sort, Mapping):
        items = list(sort.items())
    elif isinstance(sort, tuple) and len(sort) == 2 and isinstance(sort[0], str) and not isinstance(sort[1], (tuple, list)):
        items = [sort]
    elif isinstance(sort, (list, tuple)):
        items = [(s, 1) if isinstance(s, str) else s for s in sort]
    else:
        raise QueryError(f"sort must be a list of (field, 1|-1), got {sort!r}")
    out = []
    for item in items:
        if not isinstance(item, (tuple, list)) or len(item) != 2:
            raise QueryError(f"sort entries must be (field, 1|-1), got {item!r}")
        field, direction = item
        split_path(field)
        if direction not in (1, -1) or isinstance(direction, bool):
            raise QueryError(f"sort direction for {field!r} must be 1 or -1, got {direction!r}")
        out.append((field, int(direction)))
    return out


def compile_order_by(sort: Any, dialect: _Dialect = SQLITE, tiebreak: str | None = "id") -> tuple[str, list]:
    """``ORDER BY`` clause (with leading space, or empty) ordering by type rank then value, Mongo style.

    Missing and null sort first ascending. ``tiebreak`` (a column name) makes the order deterministic.
    """
    items = normalize_sort(sort)
    if not items:
        return "", []
    cols: list[str] = []
    params: list = []
    for field, direction in items:
        for expr, p in dialect.sort_keys(split_path(field)):
            cols.append(expr + (" DESC" if direction < 0 else " ASC"))
            params.extend(p)
    if tiebreak:
        cols.append(f"{tiebreak} ASC")
    return " ORDER BY " + ", ".join(cols), params


# --------------------------------------------------------------------------------------------------- projection


def normalize_projection(projection: Any) -> tuple[str, list[tuple[str, ...]]] | None:
    """``("include"|"exclude", [path segments...])`` from a list of fields or a ``{field: 1|0}`` dict, or None.

    ``"_id": 0`` may stand beside inclusions, as in MongoDB (a no-op here: records have no ``_id``).

    Raises:
        QueryError: inclusion and exclusion mixed (other than ``"_id": 0``), or an invalid path.
    """
    if projection is None:
        return None
    if isinstance(projection, str):
        projection = [projection]
    if isinstance(projection, Mapping):
        if not projection:
            return None
        if "_id" in projection and not projection["_id"] and any(projection.values()):
            # MongoDB allows {"_id": 0} beside inclusions (it drops the _id it always adds); our records have no _id.
            projection = {k: v for k, v in projection.items() if k != "_id"}
        flags = {bool(v) for v in projection.values()}
        if len(flags) > 1:
            raise QueryError("a projection cannot mix inclusion (1) and exclusion (0)")
        mode = "include" if flags.pop() else "exclude"
        return mode, [split_path(f) for f in projection]
    if isinstance(projection, (list, tuple, set, frozenset)):
        if not projection:
            return None
        return "include", [split_path(f) for f in projection]
    raise QueryError(f"projection must be a list of fields or a {{field: 1|0}} dict, got {projection!r}")


_MISSING = object()


def _get(doc: Any, path: tuple[str, ...]) -> Any:
    cur = doc
    for seg in path:
        if isinstance(cur, dict):
            cur = cur.get(seg, _MISSING)
        elif isinstance(cur, list) and seg.isascii() and seg.isdigit() and int(seg) < len(cur):
            cur = cur[int(seg)]
        else:
            return _MISSING
        if cur is _MISSING:
            return _MISSING
    return cur


def get_path(doc: Any, path: tuple[str, ...]) -> Any:
    """The value at a split dotted path (an all-digit segment indexes a list), or None when it is missing."""
    value = _get(doc, path)
    return None if value is _MISSING else value


def apply_projection(doc: dict, normalized: tuple[str, list[tuple[str, ...]]] | None) -> dict:
    """Apply a projection from :func:`normalize_projection` to one record (nested output for dotted fields)."""
    if normalized is None:
        return doc
    mode, paths = normalized
    if mode == "include":
        out: dict = {}
        for path in paths:
            value = _get(doc, path)
            if value is _MISSING:
                continue
            target = out
            for seg in path[:-1]:
                target = target.setdefault(seg, {})
            target[path[-1]] = value
        return out
    out = orjson.loads(orjson.dumps(doc)) if any(len(p) > 1 for p in paths) else dict(doc)
    for path in paths:
        target = out
        for seg in path[:-1]:
            target = target.get(seg) if isinstance(target, dict) else None
            if target is None:
                break
        if isinstance(target, dict):
            target.pop(path[-1], None)
    return out


# --------------------------------------------------------------------------------------------------- aggregate


def aggregation_key(op: str, field: str | None) -> str:
    """Output key of one aggregation: ``<op>_<field with dots replaced by _>`` (``count`` for a row count)."""
    if field in (None, "*", ""):
        return op
    return f"{op}_{field.replace('.', '_')}"


def _normalize_group_by(group_by: Any) -> list[str]:
    if group_by is None:
        return []
    if isinstance(group_by, str):
        return [group_by]
    if isinstance(group_by, (list, tuple)):
        return list(group_by)
    raise QueryError(f"group_by must be a field name or a list of them, got {group_by!r}")


def compile_aggregate(group_by: Any, aggregations: Sequence, dialect: _Dialect = SQLITE):
    """Compile a group-by with ``(op, field)`` aggregations.

    avg/sum/min/max use numeric values only (type bracketing); ``count`` counts rows where the field exists
    (``("count", "*")`` counts rows). Sum of no numbers is 0, the others are None.

    Returns:
        ``(select_sql, select_params, group_sql, decode, sort_key)``: ``decode(row) -> dict | None`` builds one
        output record from a result row (None: drop the row, it aggregates nothing); ``sort_key`` (None without groups) orders the decoded records by group value,
        identically on every backend.

    Raises:
        QueryError: unknown aggregation operator or invalid path.
    """
    groups = _normalize_group_by(group_by)
    select: list[str] = []
    sparams: list = []
    gexprs: list[str] = []
    group_widths: list[int] = []
    for field in groups:
        exprs = dialect.group_select(split_path(field))
        group_widths.append(len(exprs))
        for expr, p in exprs:
            select.append(expr)
            sparams.extend(p)
            gexprs.append(expr)
    keys: list[str] = []
    if isinstance(aggregations, tuple) and len(aggregations) == 2 and isinstance(aggregations[0], str):
        aggregations = [aggregations]
    for item in aggregations:
        if not isinstance(item, (tuple, list)) or len(item) != 2:
            raise QueryError(f"aggregations must be (op, field) pairs, got {item!r}")
        op, field = item
        if op not in AGGREGATION_OPS:
            raise QueryError(f"unknown aggregation {op!r}; supported: {', '.join(AGGREGATION_OPS)}")
        keys.append(aggregation_key(op, field))
        if op == "count":
            if field in (None, "*", ""):
                select.append("COUNT(*)")
            else:
                ex, p = dialect.exists(dialect.field(split_path(field)))
                select.append(f"COUNT(CASE WHEN {ex} THEN 1 END)")
                sparams.extend(p)
            continue
        num, p = dialect.number_value(dialect.field(split_path(field)))
        fn = op.upper()
        expr = f"{fn}({num})"
        if op == "sum":
            expr = f"COALESCE({expr}, 0)"
        select.append(expr)
        sparams.extend(p)
    if not select:
        raise QueryError("aggregate needs a group_by or at least one aggregation")
    if not groups:
        # Without groups SQL still returns one row over zero matches; Mongo returns none, so count them.
        select.append("COUNT(*)")
    # Ordinals, not expressions: PostgreSQL would not see two separately bound path parameters as one expression.
    group_sql = (" GROUP BY " + ", ".join(str(i + 1) for i in range(len(gexprs)))) if gexprs else ""

    def decode(row: Sequence) -> dict | None:
        if not groups:
            if not row[-1]:
                return None
            row = row[:-1]
        out: dict = {}
        i = 0
        for field, width in zip(groups, group_widths):
            out[field] = dialect.decode_group(row[i:i + width])
            i += width
        for key, value in zip(keys, row[i:]):
            out[key] = _plain_number(value)
        return out

    def sort_key(record: dict) -> tuple:
        return tuple(group_sort_key(record[field]) for field in groups)

    return ", ".join(select), sparams, group_sql, decode, (sort_key if groups else None)


def order_groups(records: list[dict], sort: Any = None, limit: Any = 0) -> list[dict]:
    """Sort and limit the output of :meth:`flowcept.store.Store.aggregate`: the ``$sort`` and ``$limit`` stages that
    follow ``$group`` (reference 4.6), identically on every backend.

    ``sort`` names group keys or aggregation keys (``sum_used_x``), as the output records spell them; a name in no
    record sorts as null (as in MongoDB), and records tied on every key keep their group order.

    Raises:
        QueryError: a malformed sort or limit.
    """
    items = normalize_sort(sort)
    limit = check_limit(limit)
    out = list(records)
    # Stable sorts from the last key to the first: the first key decides, later keys break its ties.
    for field, direction in reversed(items):
        out.sort(key=lambda rec, field=field: group_sort_key(rec.get(field)), reverse=direction < 0)
    return out[:limit] if limit else out


# ---- the shared parts of a store's find(): one implementation for every dialect ---------------------------------

def check_collection(collection: str) -> str:
    """``collection`` itself (a table name), or QueryError naming the known ones."""
    from flowcept.store import COLLECTIONS

    if collection not in COLLECTIONS:
        raise QueryError(f"unknown collection {collection!r}; collections: {', '.join(COLLECTIONS)}")
    return collection


def check_limit(limit: Any) -> int:
    """``limit`` as a non-negative int (None = 0 = no limit), or QueryError."""
    if limit is None:
        return 0
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise QueryError(f"limit must be a non-negative int, got {limit!r}")
    if limit > MAX_LIMIT:
        raise QueryError(f"limit must be at most {MAX_LIMIT} (2**63-1), got {limit}; use 0 for no limit")
    return limit


def compile_find(collection: str, filter: Any, sort: Any, limit: Any, dialect, doc_expr: str = "doc"):
    """``(sql, params)`` of a find: ``SELECT <doc_expr> FROM <collection> WHERE ... ORDER BY ... LIMIT ...``."""
    table = check_collection(collection)
    where, params = compile_filter(filter, dialect)
    order, oparams = compile_order_by(sort, dialect)
    limit = check_limit(limit)
    sql = f"SELECT {doc_expr} FROM {table} WHERE {where}{order}"
    params = params + oparams
    if limit:
        sql += f" LIMIT {dialect.placeholder}"
        params.append(limit)
    return sql, params


def decode_docs(rows, projection: Any) -> list[dict]:
    """The JSON documents of ``(doc,)`` rows, projected."""
    import orjson

    proj = normalize_projection(projection)
    loads = orjson.loads
    if proj is None:
        return [loads(doc) for (doc,) in rows]
    return [apply_projection(loads(doc), proj) for (doc,) in rows]


def keyset_page(fetch: Callable[[Any], list], after: Any, page_size: int) -> tuple[list[dict], Any]:
    """One page of decoded documents from ``fetch(after_key) -> [(key, doc), ...]`` (at most ``page_size`` rows in
    key order) and the key to start the next page after (None when this page is the last)."""
    rows = fetch(after)
    docs = decode_docs([(doc,) for _, doc in rows], None)
    return docs, (rows[-1][0] if len(rows) >= page_size else None)


def keyset_pages(fetch: Callable[[Any], list], first_key: Any, page_size: int):
    """Pages of decoded documents (see :func:`keyset_page`), each starting after the last key of the previous page
    (keyset pagination)."""
    after = first_key
    while after is not None:
        docs, after = keyset_page(fetch, after, page_size)
        if docs:
            yield docs
