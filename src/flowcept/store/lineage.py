"""Lineage in the store: the ``task_links`` table its triggers keep, and the recursive SQL that walks it.

::

    tasks (id, doc) ──trigger on insert/update/delete──▶ task_links (task_id, kind, value, at)
                                                           kind  'dep'        value = an upstream task id
                                                                 'dependent'  value = a downstream task id
                                                                 'used'       value = 'o:<object_id>' | 'h:<sha256>'
                                                                 'generated'  value = the same tokens
    edges, src ──▶ dst:
        parent      doc.parent_task_id ──▶ task     (read from the parent_task_id expression index, no link row)
        dependency  each of doc.dependencies ──▶ task, task ──▶ each of doc.dependents
        data        a task that generated a token ──▶ another task that used it, unless the generator started
                    after the user (both start times known); a task never links to itself
        value       (only when asked) the same for plain non-trivial scalars of one workflow, via a temp table

Only tasks whose JSON text holds ``"dependen``, ``"object_id"`` or ``sha256"`` get link rows (on SQLite a cheap
``instr`` test decides before any JSON is walked), so capture of plain tasks pays nearly nothing.
The queries here are SQL text per dialect (``"sqlite"`` or ``"postgres"``); :mod:`flowcept.query.lineage` runs them
through the store's ``run_sql``.
"""

from __future__ import annotations

__all__ = ["LINK_KEYS", "schema_statements", "walk_sql", "edges_sql", "values_steps"]

#: Keys under ``used``/``generated`` (at any depth) whose string values identify data: token prefix per key.
LINK_KEYS = {"object_id": "o:", "sha256": "h:", "data_sha256": "h:"}

# ------------------------------------------------------------------------------------------------ SQLite schema

_SQLITE_MARKERS = "(instr({d}, '\"dependen') OR instr({d}, '\"object_id\"') OR instr({d}, 'sha256\"'))"

# (kind, json function, path, extra condition, value expression) of each link source.
_SQLITE_SOURCES = (
    ("dep", "json_each", "$.dependencies", "", "j.value"),
    ("dependent", "json_each", "$.dependents", "", "j.value"),
    ("used", "json_tree", "$.used", " AND j.key IN ('object_id', 'sha256', 'data_sha256')",
     "CASE j.key WHEN 'object_id' THEN 'o:' ELSE 'h:' END || j.value"),
    ("generated", "json_tree", "$.generated", " AND j.key IN ('object_id', 'sha256', 'data_sha256')",
     "CASE j.key WHEN 'object_id' THEN 'o:' ELSE 'h:' END || j.value"),
)

_SQLITE_AT = "CASE WHEN json_type({d}, '$.started_at') IN ('integer', 'real') THEN json_extract({d}, '$.started_at') END"


def _sqlite_insert_links(id_expr: str, doc: str, source: str = "") -> str:
    """One INSERT of the link rows of ``doc`` (SQLite has no LATERAL: table-valued functions join instead)."""
    selects = [f"SELECT DISTINCT {id_expr}, '{kind}', {value}, {_SQLITE_AT.format(d=doc)} FROM {source}{fn}({doc}, "
               f"'{path}') AS j WHERE j.type = 'text'{extra}" for kind, fn, path, extra, value in _SQLITE_SOURCES]
    return "INSERT INTO task_links (task_id, kind, value, at) " + " UNION ALL ".join(selects)


_SQLITE_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS task_links (task_id TEXT NOT NULL, kind TEXT NOT NULL, value TEXT NOT NULL, at REAL)",
    "CREATE INDEX IF NOT EXISTS task_links_task ON task_links (task_id, kind)",
    "CREATE INDEX IF NOT EXISTS task_links_value ON task_links (value, kind)",
    f"""CREATE TRIGGER IF NOT EXISTS tasks_links_insert AFTER INSERT ON tasks
        WHEN {_SQLITE_MARKERS.format(d='NEW.doc')}
        BEGIN {_sqlite_insert_links('NEW.id', 'NEW.doc')}; END""",
    f"""CREATE TRIGGER IF NOT EXISTS tasks_links_update AFTER UPDATE OF doc ON tasks
        WHEN {_SQLITE_MARKERS.format(d='NEW.doc')} OR {_SQLITE_MARKERS.format(d='OLD.doc')}
        BEGIN DELETE FROM task_links WHERE task_id = OLD.id; {_sqlite_insert_links('NEW.id', 'NEW.doc')}; END""",
    f"""CREATE TRIGGER IF NOT EXISTS tasks_links_delete AFTER DELETE ON tasks
        WHEN {_SQLITE_MARKERS.format(d='OLD.doc')}
        BEGIN DELETE FROM task_links WHERE task_id = OLD.id; END""",
)
_SQLITE_BACKFILL = _sqlite_insert_links("t.id", "t.doc", source="tasks AS t, ")

# ------------------------------------------------------------------------------------------------ PostgreSQL schema

# Statement-level triggers with transition tables: one set-based INSERT per upsert statement, not one per row.
# (Formatted twice, hence the quadrupled braces of the jsonb path '{}'.)
_PG_LINKS_OF = """
    SELECT 'dep' AS kind, e #>> '{{{{}}}}' AS value FROM jsonb_array_elements(CASE jsonb_typeof({d} -> 'dependencies')
        WHEN 'array' THEN {d} -> 'dependencies' WHEN 'string' THEN jsonb_build_array({d} -> 'dependencies')
        ELSE '[]'::jsonb END) AS e WHERE jsonb_typeof(e) = 'string'
    UNION SELECT 'dependent', e #>> '{{{{}}}}' FROM jsonb_array_elements(CASE jsonb_typeof({d} -> 'dependents')
        WHEN 'array' THEN {d} -> 'dependents' WHEN 'string' THEN jsonb_build_array({d} -> 'dependents')
        ELSE '[]'::jsonb END) AS e WHERE jsonb_typeof(e) = 'string'
    UNION SELECT r.role, k.prefix || (v #>> '{{{{}}}}')
        FROM (VALUES ('used'), ('generated')) AS r(role),
             (VALUES ('object_id', 'o:'), ('sha256', 'h:'), ('data_sha256', 'h:')) AS k(key, prefix),
             jsonb_path_query({d} -> r.role, ('lax $.**.' || k.key || ' ? (@.type() == "string")')::jsonpath) AS v
        WHERE jsonb_typeof({d} -> r.role) IN ('object', 'array')"""

_PG_AT = "CASE WHEN jsonb_typeof({d} -> 'started_at') = 'number' THEN ({d} ->> 'started_at')::float8 END"

_PG_INSERT_LINKS = (f"INSERT INTO task_links (task_id, kind, value, at) SELECT n.id, l.kind, l.value, "
                    f"{_PG_AT.format(d='n.doc')} FROM {{rows}} AS n CROSS JOIN LATERAL "
                    f"({_PG_LINKS_OF.format(d='n.doc')}) AS l")

#: Bump when the link rules change: a store whose schema lacks this function rebuilds its links.
_PG_VERSIONED = "flowcept_task_links_v1"

_PG_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS task_links (task_id TEXT NOT NULL, kind TEXT NOT NULL, value TEXT NOT NULL, "
    "at DOUBLE PRECISION)",
    "CREATE INDEX IF NOT EXISTS task_links_task ON task_links (task_id, kind)",
    "CREATE INDEX IF NOT EXISTS task_links_value ON task_links (value, kind)",
    f"""CREATE OR REPLACE FUNCTION {_PG_VERSIONED}_insert() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN {_PG_INSERT_LINKS.format(rows='new_rows')}; RETURN NULL; END $$""",
    f"""CREATE OR REPLACE FUNCTION {_PG_VERSIONED}_update() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      DELETE FROM task_links WHERE task_id IN (SELECT id FROM old_rows);
      {_PG_INSERT_LINKS.format(rows='new_rows')};
      RETURN NULL;
    END $$""",
    f"""CREATE OR REPLACE FUNCTION {_PG_VERSIONED}_delete() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN DELETE FROM task_links WHERE task_id IN (SELECT id FROM old_rows); RETURN NULL; END $$""",
    "DROP TRIGGER IF EXISTS tasks_links_insert ON tasks",
    "DROP TRIGGER IF EXISTS tasks_links_update ON tasks",
    "DROP TRIGGER IF EXISTS tasks_links_delete ON tasks",
    f"""CREATE TRIGGER tasks_links_insert AFTER INSERT ON tasks REFERENCING NEW TABLE AS new_rows
        FOR EACH STATEMENT EXECUTE FUNCTION {_PG_VERSIONED}_insert()""",
    f"""CREATE TRIGGER tasks_links_update AFTER UPDATE ON tasks REFERENCING OLD TABLE AS old_rows
        NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION {_PG_VERSIONED}_update()""",
    f"""CREATE TRIGGER tasks_links_delete AFTER DELETE ON tasks REFERENCING OLD TABLE AS old_rows
        FOR EACH STATEMENT EXECUTE FUNCTION {_PG_VERSIONED}_delete()""",
    "DELETE FROM task_links",
    _PG_INSERT_LINKS.format(rows="tasks"),
)

#: Name whose presence (``to_regprocedure``) tells a PostgreSQL schema already has the current link rules.
PG_READY_FUNCTION = f"{_PG_VERSIONED}_insert()"


def schema_statements(dialect: str, fresh: bool = True) -> tuple[str, ...]:
    """DDL creating ``task_links`` and its triggers; with ``fresh`` (the table is new) also filling it from the
    stored tasks (SQLite; the PostgreSQL statements always rebuild it, they run only when the rules changed)."""
    if dialect == "sqlite":
        return _SQLITE_SCHEMA + ((_SQLITE_BACKFILL,) if fresh else ())
    return _PG_SCHEMA


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
    used and generated (parameter: the workflow id, bound once per statement that names it)."""
    if dialect == "sqlite":
        return [
            "CREATE TEMP TABLE IF NOT EXISTS flowcept_vals (task_id TEXT, role TEXT, v, at REAL)",
            "DELETE FROM temp.flowcept_vals",
            "INSERT INTO temp.flowcept_vals SELECT DISTINCT t.id, r.role, j.atom, "
            f"{_SQLITE_AT.format(d='t.doc')} FROM tasks AS t, (SELECT 'used' AS role UNION ALL SELECT 'generated') "
            "AS r, json_tree(t.doc, '$.' || r.role) AS j WHERE json_extract(t.doc, '$.\"workflow_id\"') = ? "
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
        "jsonb_path_query(t.doc -> r.role, 'lax $.**') AS v WHERE (t.doc ->> 'workflow_id') = %s "
        "AND ((jsonb_typeof(v) = 'string' AND length(v #>> '{}') > 1 AND (v #>> '{}') <> 'REDACTED') "
        "OR (jsonb_typeof(v) = 'number' "
        "AND (v)::numeric NOT IN (0, 1, -1)))",
        "CREATE INDEX ON flowcept_vals (v, role)",
        "CREATE INDEX ON flowcept_vals (task_id, role)",
        "ANALYZE flowcept_vals",
    ]


def edges_sql(dialect: str, values: bool) -> tuple[str, int]:
    """``SELECT DISTINCT src, dst, kind`` of every edge between two tasks of one workflow.

    Returns the SQL and how many times the workflow id is bound (every placeholder is the workflow id).
    """
    if dialect == "sqlite":
        wf = "json_extract({t}.doc, '$.\"workflow_id\"') = ?"
        parent = "json_extract(t.doc, '$.\"parent_task_id\"')"
        parent_join = f"JOIN tasks AS s ON s.id = {parent}"
        vals = "temp.flowcept_vals"
    else:
        wf = "({t}.doc ->> 'workflow_id') = %s"
        parent = "(t.doc ->> 'parent_task_id')"
        parent_join = f"JOIN tasks AS s ON s.id = {parent}"
        vals = "flowcept_vals"
    both = f"{wf.format(t='s')} AND {wf.format(t='t')}"
    time_ok = "(g.at IS NULL OR u.at IS NULL OR g.at <= u.at)"
    parts = [
        f"SELECT s.id AS src, t.id AS dst, 'parent' AS kind FROM tasks AS t {parent_join} WHERE {both}",
        f"SELECT s.id, t.id, 'dependency' FROM task_links AS l JOIN tasks AS t ON t.id = l.task_id "
        f"JOIN tasks AS s ON s.id = l.value WHERE l.kind = 'dep' AND {both}",
        f"SELECT s.id, t.id, 'dependency' FROM task_links AS l JOIN tasks AS s ON s.id = l.task_id "
        f"JOIN tasks AS t ON t.id = l.value WHERE l.kind = 'dependent' AND {both}",
        f"SELECT s.id, t.id, 'data' FROM task_links AS g JOIN task_links AS u ON u.value = g.value "
        f"AND u.kind = 'used' AND u.task_id <> g.task_id AND {time_ok} JOIN tasks AS s ON s.id = g.task_id "
        f"JOIN tasks AS t ON t.id = u.task_id WHERE g.kind = 'generated' AND {both}",
    ]
    if values:
        # The temp table holds one workflow's tasks only: no join back to tasks needed.
        parts.append(f"SELECT g.task_id, u.task_id, 'value' FROM {vals} AS g JOIN {vals} AS u ON u.v = g.v "
                     f"AND u.role = 'used' AND u.task_id <> g.task_id AND {time_ok} WHERE g.role = 'generated'")
    sql = "SELECT DISTINCT src, dst, kind FROM (" + " UNION ALL ".join(parts) + ") AS e ORDER BY src, dst, kind"
    return sql, 8
