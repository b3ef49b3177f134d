"""Lineage in the store: the ``task_links`` table the upserts keep, and the recursive SQL that walks it.

::

    upsert of a batch ──(its bytes hold "dependen / "object_id" / sha256")──▶ refresh the links of its task ids
    delete of tasks ──trigger──▶ their links go            task_links (task_id, kind, value, at)
                                                            kind  'dep'        value = an upstream task id
                                                                  'dependent'  value = a downstream task id
                                                                  'used'       value = 'o:<object_id>[#<version>]'
                                                                  'generated'         | 'h:<sha256>'
    edges, src ──▶ dst:
        parent      doc.parent_task_id ──▶ task     (read from the parent_task_id expression index, no link row)
        dependency  each of doc.dependencies ──▶ task, task ──▶ each of doc.dependents
        data        a task that generated a token ──▶ another task that used it, unless the generator started
                    after the user (both start times known); a task never links to itself
        value       (only when asked) the same for plain non-trivial scalars of one workflow, via a temp table

Links are derived from the stored (merged) record, in the upsert's transaction, and only for batches whose bytes
hold a marker: capture of plain tasks pays one bytes search per batch. (Row triggers on ``tasks`` would cost every
record: SQLite then copies each ``INSERT ... SELECT`` through a temporary table.) ``at`` is the task's
``started_at`` when its links were last refreshed.
The queries here are SQL text per dialect (``"sqlite"`` or ``"postgres"``); :mod:`flowcept.query.lineage` runs them
through the store's ``run_sql``.
"""

from __future__ import annotations

__all__ = ["LINK_KEYS", "LINK_MARKERS", "has_link_markers", "schema_statements", "refresh_statements",
           "walk_sql", "edges_sql", "values_steps"]

#: Keys under ``used``/``generated`` (at any depth) whose string values identify data: token prefix per key.
LINK_KEYS = {"object_id": "o:", "sha256": "h:", "data_sha256": "h:"}
#: Bytes one of which a record's JSON holds when it can have links (keys as the encoder writes them).
LINK_MARKERS = (b'"dependen', b'"object_id"', b'sha256"')


def has_link_markers(encoded: bytes | str) -> bool:
    """Whether any record of this JSON text may have links (then the upsert refreshes the links of its tasks)."""
    if isinstance(encoded, str):
        return any(m.decode() in encoded for m in LINK_MARKERS)
    return any(m in encoded for m in LINK_MARKERS)

# ------------------------------------------------------------------------------------------------ SQLite schema

_SQLITE_MARKERS = "(instr({d}, '\"dependen') OR instr({d}, '\"object_id\"') OR instr({d}, 'sha256\"'))"

# (kind, FROM, condition, value) of each link source over ``tt(id, doc, at)``. The first condition of each is a
# cheap test on the text that does not depend on the JSON walk, so SQLite checks it once before walking. Object ids
# are read from their containers (json_tree's value of an object is its own text, small): looking a sibling key up
# by path in the whole record instead would parse the record again per object (quadratic for a task using 50,000
# objects). An object id with an integer ``version`` beside it is versioned: a user links to that version only, a
# generator gives both tokens (so a user naming the object without a version links to every version), hence the
# generated rows paired with n = 0 (plain token) and n = 1 (versioned token).
_OBJ = "(j.type = 'object' AND instr(j.value, '\"object_id\"') AND json_type(j.value, '$.object_id') = 'text')"
_HASH = "(j.type = 'text' AND j.key IN ('sha256', 'data_sha256'))"
_VERSIONED = "json_type(j.value, '$.version') = 'integer'"
_OBJ_TOKEN = "'o:' || json_extract(j.value, '$.object_id')"
_HAS_DATA = "(instr(tt.doc, '\"object_id\"') OR instr(tt.doc, 'sha256\"'))"
_SQLITE_SOURCES = (
    ("dep", "json_each(tt.doc, '$.dependencies') AS j", "instr(tt.doc, '\"dependencies\"') AND j.type = 'text'",
     "j.value"),
    ("dependent", "json_each(tt.doc, '$.dependents') AS j", "instr(tt.doc, '\"dependents\"') AND j.type = 'text'",
     "j.value"),
    ("used", "json_tree(tt.doc, '$.used') AS j", f"{_HAS_DATA} AND ({_OBJ} OR {_HASH})",
     f"CASE j.type WHEN 'text' THEN 'h:' || j.value ELSE {_OBJ_TOKEN} || CASE WHEN {_VERSIONED} THEN '#' || "
     f"json_extract(j.value, '$.version') ELSE '' END END"),
    ("generated", "json_tree(tt.doc, '$.generated') AS j CROSS JOIN (SELECT 0 AS n UNION ALL SELECT 1) AS c",
     f"{_HAS_DATA} AND ({_OBJ} OR {_HASH}) AND (c.n = 0 OR (j.type = 'object' AND {_VERSIONED}))",
     f"CASE j.type WHEN 'text' THEN 'h:' || j.value ELSE {_OBJ_TOKEN} || CASE c.n WHEN 1 THEN '#' || "
     f"json_extract(j.value, '$.version') ELSE '' END END"),
)

_SQLITE_AT = "CASE WHEN json_type({d}, '$.started_at') IN ('integer', 'real') THEN json_extract({d}, '$.started_at') END"


def _sqlite_insert_links(tasks: str, ctes: str = "") -> str:
    """One INSERT of the link rows of the tasks ``tasks`` selects (``id, doc``), each record's start time read once
    into a materialized ``tt`` (SQLite has no LATERAL: table-valued functions join instead)."""
    tt = f"tt(id, doc, at) AS MATERIALIZED (SELECT t.id, t.doc, {_SQLITE_AT.format(d='t.doc')} FROM {tasks})"
    selects = [f"SELECT tt.id, '{kind}', {value}, tt.at FROM tt, {frm} WHERE {cond}"
               for kind, frm, cond, value in _SQLITE_SOURCES]
    return (f"WITH {ctes}{tt} INSERT INTO task_links (task_id, kind, value, at) " + " UNION ALL ".join(selects))


#: Bump when the link rules change: a store without this version's trigger drops the old ones and rebuilds its links.
LINKS_VERSION = 4
_OLD_TRIGGERS = ("tasks_links_insert", "tasks_links_update", "tasks_links_delete") + tuple(
    f"tasks_links_v{v}_{op}" for v in range(2, LINKS_VERSION) for op in ("insert", "update", "delete"))
_V = f"tasks_links_v{LINKS_VERSION}"
#: Trigger whose presence (``sqlite_master``) tells a SQLite file already has the current link rules.
SQLITE_READY_TRIGGER = f"{_V}_delete"

_SQLITE_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS task_links (task_id TEXT NOT NULL, kind TEXT NOT NULL, value TEXT NOT NULL, at REAL)",
    "CREATE INDEX IF NOT EXISTS task_links_task ON task_links (task_id, kind)",
    "CREATE INDEX IF NOT EXISTS task_links_value ON task_links (value, kind)",
    *(f"DROP TRIGGER IF EXISTS {name}" for name in _OLD_TRIGGERS),
    f"""CREATE TRIGGER IF NOT EXISTS {_V}_delete AFTER DELETE ON tasks
        WHEN {_SQLITE_MARKERS.format(d='OLD.doc')}
        BEGIN DELETE FROM task_links WHERE task_id = OLD.id; END""",
    "DELETE FROM task_links",
    _sqlite_insert_links("tasks AS t"),
)

# The task ids whose links a batch refreshes: from the batch's records (a JSON array, the encoded path) or from a
# JSON array of ids (the Python path, where records may lack "type").
_SQLITE_IDS = {
    "records": (f"SELECT json_extract(value, '$.task_id') FROM json_each(?) WHERE json_extract(value, '$.type') = "
                f"'task' AND {_SQLITE_MARKERS.format(d='value')}"),
    "ids": "SELECT value FROM json_each(?)",
}


def _sqlite_refresh(source: str) -> tuple[str, ...]:
    ids = _SQLITE_IDS[source]
    insert = _sqlite_insert_links("ids JOIN tasks AS t ON t.id = ids.id", ctes=f"ids(id) AS MATERIALIZED ({ids}), ")
    return (f"DELETE FROM task_links WHERE task_id IN ({ids})", insert)


# ------------------------------------------------------------------------------------------------ PostgreSQL schema

# The link rows of each task ``{d}`` (formatted twice, hence the quadrupled braces of the jsonb path '{}').
_PG_LINKS_OF = """
    SELECT 'dep' AS kind, e #>> '{{{{}}}}' AS value FROM jsonb_array_elements(CASE jsonb_typeof({d} -> 'dependencies')
        WHEN 'array' THEN {d} -> 'dependencies' WHEN 'string' THEN jsonb_build_array({d} -> 'dependencies')
        ELSE '[]'::jsonb END) AS e WHERE jsonb_typeof(e) = 'string'
    UNION SELECT 'dependent', e #>> '{{{{}}}}' FROM jsonb_array_elements(CASE jsonb_typeof({d} -> 'dependents')
        WHEN 'array' THEN {d} -> 'dependents' WHEN 'string' THEN jsonb_build_array({d} -> 'dependents')
        ELSE '[]'::jsonb END) AS e WHERE jsonb_typeof(e) = 'string'
    UNION SELECT r.role, 'o:' || (c ->> 'object_id') || CASE WHEN r.role = 'used' AND {versioned} THEN '#' ||
            (c ->> 'version') ELSE '' END
        FROM (VALUES ('used'), ('generated')) AS r(role),
             jsonb_path_query({d} -> r.role, 'lax $.** ? (@.object_id.type() == "string")') AS c
        WHERE jsonb_typeof(c) = 'object' AND jsonb_typeof({d} -> r.role) IN ('object', 'array')
    UNION SELECT 'generated', 'o:' || (c ->> 'object_id') || '#' || (c ->> 'version')
        FROM jsonb_path_query({d} -> 'generated', 'lax $.** ? (@.object_id.type() == "string")') AS c
        WHERE jsonb_typeof(c) = 'object' AND {versioned} AND jsonb_typeof({d} -> 'generated') IN ('object', 'array')
    UNION SELECT r.role, 'h:' || (v #>> '{{{{}}}}')
        FROM (VALUES ('used'), ('generated')) AS r(role), (VALUES ('sha256'), ('data_sha256')) AS k(key),
             jsonb_path_query({d} -> r.role, ('lax $.**.' || k.key || ' ? (@.type() == "string")')::jsonpath) AS v
        WHERE jsonb_typeof({d} -> r.role) IN ('object', 'array')"""
_PG_LINKS_OF = _PG_LINKS_OF.replace("{versioned}", "(jsonb_typeof(c -> 'version') = 'number' AND "
                                    "(c ->> 'version') ~ '^-?[0-9]+$')")

_PG_AT = "CASE WHEN jsonb_typeof({d} -> 'started_at') = 'number' THEN ({d} ->> 'started_at')::float8 END"

# OFFSET 0 keeps the start time computed once per task (a large record is not detoasted again per link row).
_PG_INSERT_LINKS = (f"INSERT INTO task_links (task_id, kind, value, at) SELECT n.id, l.kind, l.value, n.at "
                    f"FROM (SELECT r.id, r.doc, {_PG_AT.format(d='r.doc')} AS at FROM {{rows}} AS r OFFSET 0) AS n "
                    f"CROSS JOIN LATERAL ({_PG_LINKS_OF.format(d='n.doc')}) AS l")

_PG_VERSIONED = f"flowcept_task_links_v{LINKS_VERSION}"

_PG_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS task_links (task_id TEXT NOT NULL, kind TEXT NOT NULL, value TEXT NOT NULL, "
    "at DOUBLE PRECISION)",
    "CREATE INDEX IF NOT EXISTS task_links_task ON task_links (task_id, kind)",
    "CREATE INDEX IF NOT EXISTS task_links_value ON task_links (value, kind)",
    # A statement-level trigger with a transition table: one set-based DELETE per delete statement.
    f"""CREATE OR REPLACE FUNCTION {_PG_VERSIONED}_delete() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN DELETE FROM task_links WHERE task_id IN (SELECT id FROM old_rows); RETURN NULL; END $$""",
    "DROP TRIGGER IF EXISTS tasks_links_insert ON tasks",
    "DROP TRIGGER IF EXISTS tasks_links_update ON tasks",
    "DROP TRIGGER IF EXISTS tasks_links_delete ON tasks",
    f"""CREATE TRIGGER tasks_links_delete AFTER DELETE ON tasks REFERENCING OLD TABLE AS old_rows
        FOR EACH STATEMENT EXECUTE FUNCTION {_PG_VERSIONED}_delete()""",
    "DELETE FROM task_links",
    _PG_INSERT_LINKS.format(rows="tasks"),
)

#: Name whose presence (``to_regprocedure``) tells a PostgreSQL schema already has the current link rules.
PG_READY_FUNCTION = f"{_PG_VERSIONED}_delete()"

_PG_IDS = {
    # json (not jsonb): a lexer pass, and j::text is the element's own text, as the encoder wrote it.
    "records": ("SELECT DISTINCT j ->> 'task_id' FROM json_array_elements(%s::json) AS a(j) WHERE j ->> 'type' = "
                "'task' AND (strpos(j::text, '\"dependen') > 0 OR strpos(j::text, '\"object_id\"') > 0 OR "
                "strpos(j::text, 'sha256\"') > 0)"),
    "ids": "SELECT jsonb_array_elements_text(%s::jsonb)",
}


def _pg_refresh(source: str) -> tuple[str, ...]:
    insert = _PG_INSERT_LINKS.format(rows="(SELECT t.* FROM tasks AS t WHERE t.id IN (SELECT id FROM ids))")
    return (f"WITH ids(id) AS MATERIALIZED ({_PG_IDS[source]}), "
            f"gone AS (DELETE FROM task_links WHERE task_id IN (SELECT id FROM ids)) {insert}",)


def refresh_statements(dialect: str, source: str) -> tuple[str, ...]:
    """Statements re-deriving the links of the tasks a batch wrote, run after the upsert in its transaction; each
    takes one parameter: the batch's JSON array of records (``source="records"``) or of task ids (``"ids"``)."""
    return _sqlite_refresh(source) if dialect == "sqlite" else _pg_refresh(source)


def schema_statements(dialect: str) -> tuple[str, ...]:
    """DDL creating ``task_links`` and this version's delete trigger and rebuilding the links from the stored tasks;
    run it (in one transaction) when :data:`SQLITE_READY_TRIGGER` / :data:`PG_READY_FUNCTION` is missing."""
    return _SQLITE_SCHEMA if dialect == "sqlite" else _PG_SCHEMA


# ------------------------------------------------------------------------------------------------ recursive walks


def _sqlite_steps(direction: str, values: bool) -> list[str]:
    """One recursive SELECT per edge kind (SQLite runs a compound recursive term, each part on each new row).

    ``{d}`` takes the depth column, ``{w}`` the depth condition, inside the join on ``walk``."""
    time_ok = "(g.at IS NULL OR u.at IS NULL OR g.at <= u.at)"
    if direction == "up":
        steps = [
            "SELECT json_extract(t.doc, '$.parent_task_id'){d} FROM walk JOIN tasks AS t ON t.id = walk.id{w} "
            "WHERE json_type(t.doc, '$.parent_task_id') = 'text'",
            "SELECT l.value{d} FROM walk JOIN task_links AS l ON l.task_id = walk.id AND l.kind = 'dep'{w}",
            "SELECT l.task_id{d} FROM walk JOIN task_links AS l ON l.value = walk.id AND l.kind = 'dependent'{w}",
            "SELECT g.task_id{d} FROM walk JOIN task_links AS u ON u.task_id = walk.id AND u.kind = 'used'{w} "
            f"JOIN task_links AS g ON g.value = u.value AND g.kind = 'generated' AND g.task_id <> walk.id AND {time_ok}",
        ]
        if values:
            steps.append("SELECT g.task_id{d} FROM walk JOIN temp.flowcept_vals AS u ON u.task_id = walk.id "
                         "AND u.role = 'used'{w} JOIN temp.flowcept_vals AS g ON g.v = u.v AND g.role = 'generated' "
                         f"AND g.task_id <> walk.id AND {time_ok}")
        return steps
    steps = [
        "SELECT t.id{d} FROM walk JOIN tasks AS t ON json_extract(t.doc, '$.\"parent_task_id\"') = walk.id{w}",
        "SELECT l.task_id{d} FROM walk JOIN task_links AS l ON l.value = walk.id AND l.kind = 'dep'{w}",
        "SELECT l.value{d} FROM walk JOIN task_links AS l ON l.task_id = walk.id AND l.kind = 'dependent'{w}",
        "SELECT u.task_id{d} FROM walk JOIN task_links AS g ON g.task_id = walk.id AND g.kind = 'generated'{w} "
        f"JOIN task_links AS u ON u.value = g.value AND u.kind = 'used' AND u.task_id <> walk.id AND {time_ok}",
    ]
    if values:
        steps.append("SELECT u.task_id{d} FROM walk JOIN temp.flowcept_vals AS g ON g.task_id = walk.id "
                     "AND g.role = 'generated'{w} JOIN temp.flowcept_vals AS u ON u.v = g.v AND u.role = 'used' "
                     f"AND u.task_id <> walk.id AND {time_ok}")
    return steps


def _pg_steps(direction: str, values: bool) -> list[str]:
    """The same edge kinds as one LATERAL union (PostgreSQL allows one reference to the recursive table)."""
    if direction == "up":
        steps = [
            "SELECT t.doc ->> 'parent_task_id' FROM tasks AS t WHERE t.id = walk.id "
            "AND jsonb_typeof(t.doc -> 'parent_task_id') = 'string'",
            "SELECT l.value FROM task_links AS l WHERE l.task_id = walk.id AND l.kind = 'dep'",
            "SELECT l.task_id FROM task_links AS l WHERE l.value = walk.id AND l.kind = 'dependent'",
            "SELECT g.task_id FROM task_links AS u JOIN task_links AS g ON g.value = u.value AND g.kind = 'generated' "
            "AND g.task_id <> walk.id AND (g.at IS NULL OR u.at IS NULL OR g.at <= u.at) "
            "WHERE u.task_id = walk.id AND u.kind = 'used'",
        ]
        if values:
            steps.append("SELECT g.task_id FROM flowcept_vals AS u JOIN flowcept_vals AS g ON g.v = u.v "
                         "AND g.role = 'generated' AND g.task_id <> walk.id "
                         "AND (g.at IS NULL OR u.at IS NULL OR g.at <= u.at) WHERE u.task_id = walk.id "
                         "AND u.role = 'used'")
        return steps
    steps = [
        "SELECT t.id FROM tasks AS t WHERE (t.doc ->> 'parent_task_id') = walk.id",
        "SELECT l.task_id FROM task_links AS l WHERE l.value = walk.id AND l.kind = 'dep'",
        "SELECT l.value FROM task_links AS l WHERE l.task_id = walk.id AND l.kind = 'dependent'",
        "SELECT u.task_id FROM task_links AS g JOIN task_links AS u ON u.value = g.value AND u.kind = 'used' "
        "AND u.task_id <> walk.id AND (g.at IS NULL OR u.at IS NULL OR g.at <= u.at) "
        "WHERE g.task_id = walk.id AND g.kind = 'generated'",
    ]
    if values:
        steps.append("SELECT u.task_id FROM flowcept_vals AS g JOIN flowcept_vals AS u ON u.v = g.v "
                     "AND u.role = 'used' AND u.task_id <> walk.id "
                     "AND (g.at IS NULL OR u.at IS NULL OR g.at <= u.at) WHERE g.task_id = walk.id "
                     "AND g.role = 'generated'")
    return steps


def walk_sql(dialect: str, direction: str, limited: bool, values: bool) -> tuple[str, int]:
    """``WITH RECURSIVE walk ...`` reaching every task id in ``direction`` (``"up"`` or ``"down"``) from a start id.

    Returns the SQL and how many times the depth limit is bound after the start id (the parameters are: the start
    id, then the limit that many times). Rows: ``(id, depth)``, one per id, the start id included, ``depth`` the
    least number of edges (NULL when not ``limited``). Without a limit the recursion keeps one row per id, so
    cycles end; with one, rows are ``(id, depth)`` pairs, bounded by the limit.
    """
    limit_ph = "?" if dialect == "sqlite" else "%s"
    if dialect == "sqlite":
        d, w = (", walk.depth + 1", " AND walk.depth < ?") if limited else ("", "")
        parts = [step.format(d=d, w=w) for step in _sqlite_steps(direction, values)]
        recursive = " UNION ".join(parts)
        n_limit = len(parts) if limited else 0
        seed = "SELECT ?"
    else:
        inner = " UNION ALL ".join(_pg_steps(direction, values))
        sel = "n.id, walk.depth + 1" if limited else "n.id"
        where = f" WHERE walk.depth < {limit_ph}" if limited else ""
        recursive = f"SELECT {sel} FROM walk CROSS JOIN LATERAL ({inner}) AS n(id){where}"
        n_limit = 1 if limited else 0
        seed = "SELECT %s::text"
    if limited:
        return (f"WITH RECURSIVE walk(id, depth) AS ({seed}, 0 UNION {recursive}) "
                f"SELECT id, MIN(depth) FROM walk GROUP BY id"), n_limit
    return f"WITH RECURSIVE walk(id) AS ({seed} UNION {recursive}) SELECT id, NULL FROM walk", n_limit


def values_steps(dialect: str) -> list[str]:
    """Statements filling the ``flowcept_vals`` temp table with the non-trivial scalars that tasks of one workflow
    used and generated (parameter: the workflow id, bound once per statement that names it).

    A value is an entry of ``used``/``generated`` (an argument or an output; a scalar ``used`` is one value), as
    the exports' ``value_items`` reads them: scalars inside a list or a nested dict are no values of their own, so
    ``[10, 20]`` generated never links to a later use of ``20``."""
    if dialect == "sqlite":
        return [
            "CREATE TEMP TABLE IF NOT EXISTS flowcept_vals (task_id TEXT, role TEXT, v, at REAL)",
            "DELETE FROM temp.flowcept_vals",
            "INSERT INTO temp.flowcept_vals SELECT DISTINCT t.id, r.role, j.atom, "
            f"{_SQLITE_AT.format(d='t.doc')} FROM tasks AS t, (SELECT 'used' AS role UNION ALL SELECT 'generated') "
            "AS r, json_each(t.doc, '$.' || r.role) AS j WHERE json_extract(t.doc, '$.\"workflow_id\"') = ? "
            # An integer key is a list's element, not a value (a dict's entries have text keys, a scalar none).
            "AND typeof(j.key) <> 'integer' "
            # "REDACTED" (flowcept/redact.py) is no data: equal placeholders must not link tasks.
            "AND ((j.type = 'text' AND length(j.atom) > 1 AND j.atom != 'REDACTED') "
            "OR (j.type IN ('integer', 'real') AND j.atom NOT IN (0, 1, -1)))",
            "CREATE INDEX IF NOT EXISTS temp.flowcept_vals_v ON flowcept_vals (v, role)",
            "CREATE INDEX IF NOT EXISTS temp.flowcept_vals_task ON flowcept_vals (task_id, role)",
        ]
    return [
        "CREATE TEMP TABLE IF NOT EXISTS flowcept_vals (task_id TEXT, role TEXT, v JSONB, at DOUBLE PRECISION) "
        "ON COMMIT DROP",
        "INSERT INTO flowcept_vals SELECT DISTINCT t.id, r.role, v, "
        f"{_PG_AT.format(d='t.doc')} FROM tasks AS t, (VALUES ('used'), ('generated')) AS r(role), "
        # A dict's entries, or the whole of anything else (a list is then no scalar: no value).
        "jsonb_each(CASE jsonb_typeof(t.doc -> r.role) WHEN 'object' THEN t.doc -> r.role "
        "ELSE jsonb_build_object('value', t.doc -> r.role) END) AS e(k, v) WHERE (t.doc ->> 'workflow_id') = %s "
        "AND ((jsonb_typeof(v) = 'string' AND length(v #>> '{}') > 1 AND (v #>> '{}') <> 'REDACTED') "
        "OR (jsonb_typeof(v) = 'number' "
        "AND (v)::numeric NOT IN (0, 1, -1)))",
        "CREATE INDEX ON flowcept_vals (v, role)",
        "CREATE INDEX ON flowcept_vals (task_id, role)",
        "ANALYZE flowcept_vals",
    ]


def edges_sql(dialect: str, values: bool) -> tuple[str, int]:
    """``SELECT DISTINCT src, dst, kind`` of every edge between two tasks of one workflow, ordered.

    The workflow's task ids are read once (its ``workflow_id`` index) into ``wf``; edges join on ids, so no large
    record is parsed per edge. Returns the SQL and how many times the workflow id is bound.
    """
    if dialect == "sqlite":
        wf = "SELECT id FROM tasks WHERE json_extract(doc, '$.\"workflow_id\"') = ?"
        parent = "json_extract(t.doc, '$.\"parent_task_id\"')"
        vals = "temp.flowcept_vals"
    else:
        wf = "SELECT id FROM tasks WHERE (doc ->> 'workflow_id') = %s"
        parent = "(t.doc ->> 'parent_task_id')"
        vals = "flowcept_vals"
    time_ok = "(g.at IS NULL OR u.at IS NULL OR g.at <= u.at)"
    parts = [
        f"SELECT {parent} AS src, c.id AS dst, 'parent' AS kind FROM wf AS c JOIN tasks AS t ON t.id = c.id "
        f"WHERE {parent} IN (SELECT id FROM wf) AND {parent} <> c.id",
        # A task naming itself in dependencies/dependents is no edge (a task never links to itself).
        "SELECT s.id, d.id, 'dependency' FROM task_links AS l JOIN wf AS d ON d.id = l.task_id "
        "JOIN wf AS s ON s.id = l.value WHERE l.kind = 'dep' AND s.id <> d.id",
        "SELECT s.id, d.id, 'dependency' FROM task_links AS l JOIN wf AS s ON s.id = l.task_id "
        "JOIN wf AS d ON d.id = l.value WHERE l.kind = 'dependent' AND s.id <> d.id",
        f"SELECT s.id, d.id, 'data' FROM task_links AS g JOIN task_links AS u ON u.value = g.value "
        f"AND u.kind = 'used' AND u.task_id <> g.task_id AND {time_ok} JOIN wf AS s ON s.id = g.task_id "
        f"JOIN wf AS d ON d.id = u.task_id WHERE g.kind = 'generated'",
    ]
    if values:
        # The temp table holds one workflow's tasks only: no join back to tasks needed.
        parts.append(f"SELECT g.task_id, u.task_id, 'value' FROM {vals} AS g JOIN {vals} AS u ON u.v = g.v "
                     f"AND u.role = 'used' AND u.task_id <> g.task_id AND {time_ok} WHERE g.role = 'generated'")
    sql = (f"WITH wf(id) AS MATERIALIZED ({wf}) SELECT DISTINCT src, dst, kind FROM ("
           + " UNION ALL ".join(parts) + ") AS e ORDER BY src, dst, kind")
    return sql, 1
