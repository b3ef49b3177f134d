"""Cheap ids, unique across threads, processes and hosts.

An id is a per-process random prefix plus a counter, both kept in :data:`flowcept._runtime.RUNTIME`. The prefix
comes from ``os.urandom`` (64 bits), so two processes, even on two hosts, collide only with negligible probability;
the counter's ``next()`` is atomic under the GIL, so threads never share a value. After ``fork`` the child draws a
new prefix (:meth:`flowcept._runtime.Runtime.reset_after_fork`).

The counter starts at 10**9, so the ids of one process keep one length (for the first nine billion) and sort as they
were made: the stores' primary-key B-trees then append instead of inserting all over (SQLite inserts a record in
about half the time, bench/bench_core.py's floor).
"""

from __future__ import annotations

import uuid

from flowcept._runtime import RUNTIME

#: The source of the expression generated capture wrappers inline for a new id (``_fc_rt`` is :data:`RUNTIME`).
NEW_ID_INLINE = "_fc_rt.id_prefix + str(next(_fc_rt.id_counter))"


def new_id() -> str:
    """A new unique id, e.g. ``'9f3c0a1b2c3d4e5f-1000000042'``."""
    rt = RUNTIME
    return rt.id_prefix + str(next(rt.id_counter))


def new_uuid() -> str:
    """A uuid4 string, used for workflow and campaign ids (the reference's shape)."""
    return str(uuid.uuid4())
