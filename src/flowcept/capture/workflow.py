"""``@flowcept``: run a function as a whole workflow (each call inside its own ``Flowcept`` block)."""

from __future__ import annotations

import functools
import inspect
from typing import Any, Callable


def flowcept(func: Callable | None = None, **flowcept_kwargs: Any):
    """Wrap a "main" function so each call is one workflow; decorated tasks inside it belong to it.

    Usable bare (``@flowcept``) or with :class:`~flowcept.Flowcept` arguments (``@flowcept(workflow_name="x")``).
    The workflow is named after the function unless ``workflow_name`` is given. Works on ``async def`` too.
    As in the reference, ``start_persistence``, ``save_workflow`` and ``check_safe_stops`` default to False here
    (so the JSONL file holds only the tasks); pass ``save_workflow=True`` to also store the workflow record.
    """
    if func is None:
        return lambda f: flowcept(f, **flowcept_kwargs)
    from flowcept.controller import Flowcept

    from flowcept.capture._builder import name_of

    # The reference's defaults for a decorated main (reference-facts 5.4): no workflow record, no persistence
    # consumer, no safe-stop wait, unless asked for. Tasks still carry the workflow id.
    kwargs = {"workflow_name": name_of(func), "start_persistence": False, "save_workflow": False,
              "check_safe_stops": False, **flowcept_kwargs}
    Flowcept(**{**kwargs, "delete_buffer_file": False})  # fail fast on bad arguments, at decoration time

    if inspect.iscoroutinefunction(func):
        @functools.wraps(func)
        async def async_main(*args, **kw):
            with Flowcept(**kwargs):
                return await func(*args, **kw)
        return async_main

    @functools.wraps(func)
    def main(*args, **kw):
        with Flowcept(**kwargs):
            return func(*args, **kw)
    return main
