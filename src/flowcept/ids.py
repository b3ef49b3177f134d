"""Cheap ids, unique across threads, processes and hosts.

An id is a per-process random prefix plus a counter. The prefix comes from ``os.urandom`` (64 bits), so two
processes, even on two hosts, collide only with negligible probability; the counter's ``next()`` is atomic under
the GIL, so threads never share a value. After ``fork`` the child draws a new prefix.
"""

from __future__ import annotations

import itertools
import os
import uuid

_prefix = ""
_counter = itertools.count()


def _reseed() -> None:
    global _prefix, _counter
    _prefix = os.urandom(8).hex() + "-"
    _counter = itertools.count()


_reseed()
os.register_at_fork(after_in_child=_reseed)


def new_id() -> str:
    """A new unique id, e.g. ``'9f3c0a1b2c3d4e5f-42'``."""
    return _prefix + str(next(_counter))


def new_uuid() -> str:
    """A uuid4 string, used for workflow and campaign ids (the reference's shape)."""
    return str(uuid.uuid4())
