"""Cheap ids, unique across threads, processes and hosts.

An id is a per-process random prefix plus a counter, both kept in :data:`flowcept._runtime.RUNTIME`. The prefix
comes from ``os.urandom`` (64 bits), so two processes, even on two hosts, collide only with negligible probability;
the counter's ``next()`` is atomic under the GIL, so threads never share a value. After ``fork`` the child draws a
new prefix (:meth:`flowcept._runtime.Runtime.reset_after_fork`).
"""

from __future__ import annotations

import uuid

from flowcept._runtime import RUNTIME

#: The source of the expression generated capture wrappers inline for a new id (``_fc_rt`` is :data:`RUNTIME`).
NEW_ID_INLINE = "_fc_rt.id_prefix + str(next(_fc_rt.id_counter))"


def new_id() -> str:
    """A new unique id, e.g. ``'9f3c0a1b2c3d4e5f-42'``."""
    rt = RUNTIME
    return rt.id_prefix + str(next(rt.id_counter))


def new_uuid() -> str:
    """A uuid4 string, used for workflow and campaign ids (the reference's shape)."""
    return str(uuid.uuid4())
