"""Task-to-task edges of a workflow (parent, dependencies, data flow by content hash), found while streaming.

The lineage module of the query side computes the same edges in the store; until exports read them from there,
:func:`direct_edges` and :class:`ScratchIndex` derive them here from the pages an export reads. Memory stays
bounded: what must outlive a page (which task generated which hash, which ids were already written) lives in a
temporary SQLite file, deleted on close.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
from typing import Any, Iterator

from flowcept.export._source import is_trivial, value_hash

__all__ = ["direct_edges", "value_items", "ScratchIndex"]


def direct_edges(task: dict) -> list[tuple[str, str, str]]:
    """``(upstream task id, downstream task id, kind)`` edges a task record states itself.

    ``kind`` is ``"parent"`` (``parent_task_id``) or ``"dependency"`` (each id in ``dependencies``). Self edges
    (a task naming itself) are dropped.
    """
    tid = task["task_id"]
    out = []
    parent = task.get("parent_task_id")
    if parent is not None and parent != tid:
        out.append((str(parent), tid, "parent"))
    deps = task.get("dependencies")
    if isinstance(deps, (list, tuple)):
        for dep in dict.fromkeys(str(d) for d in deps if d is not None):
            if dep != tid:
                out.append((dep, tid, "dependency"))
    return out


def value_items(values: Any) -> Iterator[tuple[str, Any, str]]:
    """``(name, value, sha256)`` of each entry of a ``used``/``generated`` dict (a non-dict is one ``value``)."""
    if values is None:
        return
    if not isinstance(values, dict):
        values = {"value": values}
    for name, value in values.items():
        yield str(name), value, value_hash(value)


def flows(value: Any, match_scalars: bool) -> bool:
    """Whether sharing ``value`` makes a data-flow edge: containers and non-trivial scalars when asked."""
    if is_trivial(value):
        return False
    return match_scalars or isinstance(value, (dict, list))


class ScratchIndex:
    """A temporary on-disk index for one export: data-flow edges and first-seen checks.

    Args:
        match_scalars: plain scalar values (numbers, strings) also make data-flow edges; trivial ones never do.
    """

    def __init__(self, match_scalars: bool = False):
        self.match_scalars = match_scalars
        fd, self._path = tempfile.mkstemp(prefix="flowcept_export_", suffix=".sqlite")
        os.close(fd)
        self._db = sqlite3.connect(self._path, isolation_level=None)
        self._db.executescript(
            "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; PRAGMA cache_size=-16000;"
            "CREATE TABLE gen (hash TEXT, task TEXT, t REAL);"
            "CREATE TABLE use (hash TEXT, task TEXT, t REAL);"
            "CREATE TABLE dep (src TEXT, dst TEXT);"
            "CREATE TABLE seen (key TEXT PRIMARY KEY) WITHOUT ROWID;")

    def first_seen(self, key: str) -> bool:
        """True the first time ``key`` is asked for during this export (entities and agents are written once)."""
        return self._db.execute("INSERT OR IGNORE INTO seen VALUES (?)", (key,)).rowcount == 1

    def add_flows(self, task: dict) -> None:
        """Remember the hashes ``task`` used and generated (only values that can make data-flow edges), and the
        dependencies it states (data flow never repeats those)."""
        tid, started = task["task_id"], task.get("started_at")
        deps = [(src, dst) for src, dst, kind in direct_edges(task) if kind == "dependency"]
        if deps:
            self._db.executemany("INSERT INTO dep VALUES (?, ?)", deps)
        for table, field in (("gen", "generated"), ("use", "used")):
            rows = [(h, tid, started) for _, value, h in value_items(task.get(field))
                    if flows(value, self.match_scalars)]
            if rows:
                self._db.executemany(f"INSERT INTO {table} VALUES (?, ?, ?)", rows)

    def data_edges(self) -> Iterator[tuple[str, str, str]]:
        """``(generating task, using task, hash)``, once per pair of tasks.

        Each use is linked to the latest other task that generated the same hash and did not start after the
        user did; so a value that comes back later makes no cycle, a task never feeds itself, and a value shared
        by many producers and many users costs one lookup per use, not producers times users.
        """
        self._db.execute("CREATE INDEX IF NOT EXISTS gen_hash ON gen (hash, t)")
        self._db.execute("CREATE INDEX IF NOT EXISTS dep_pair ON dep (dst, src)")
        cur = self._db.execute(
            "SELECT src, dst, MIN(hash) FROM (SELECT u.task AS dst, u.hash AS hash, "
            " (SELECT g.task FROM gen g WHERE g.hash = u.hash AND g.task != u.task "
            "  AND (g.t IS NULL OR u.t IS NULL OR g.t <= u.t) ORDER BY g.t DESC LIMIT 1) AS src FROM use u) AS d "
            "WHERE src IS NOT NULL AND NOT EXISTS (SELECT 1 FROM dep WHERE dep.dst = d.dst AND dep.src = d.src) "
            "GROUP BY src, dst ORDER BY src, dst")
        yield from cur

    def close(self) -> None:
        """Delete the scratch file; idempotent."""
        if self._db is not None:
            self._db.close()
            self._db = None
            try:
                os.unlink(self._path)
            except OSError:
                pass

    def __enter__(self) -> "ScratchIndex":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
