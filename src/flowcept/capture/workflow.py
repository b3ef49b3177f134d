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
    (the JSONL file holds only the tasks); the workflow record is then written to the store at the end of the
    call, so it stays queryable. ``save_workflow=True`` sends it through the pipeline (and the JSONL file) too;
    ``save_workflow=False`` leaves it out everywhere.
    """
    if func is None:
        return lambda f: flowcept(f, **flowcept_kwargs)
    from flowcept.controller import Flowcept

    from flowcept.capture._builder import name_of

    # The reference's defaults for a decorated main (reference-facts 5.4): no workflow record, no persistence
    # consumer, no safe-stop wait, unless asked for. Tasks still carry the workflow id.
    kwargs = {"workflow_name": name_of(func), "start_persistence": False, "save_workflow": False,
              "check_safe_stops": False, **flowcept_kwargs}
    # Unless save_workflow was given, the workflow record still reaches the store (written there at stop, not
    # through the JSONL file), so the workflow stays findable by name in queries and the UI.
    store_only = "save_workflow" not in flowcept_kwargs and "save_workflows" not in flowcept_kwargs
    Flowcept(**{**kwargs, "delete_buffer_file": False})  # fail fast on bad arguments, at decoration time

    def controller() -> Flowcept:
        fc = Flowcept(**kwargs)
        fc._workflow_in_store_only = store_only
        return fc

    if inspect.iscoroutinefunction(func):
        @functools.wraps(func)
        async def async_main(*args, **kw):
            with controller():
                return await func(*args, **kw)
        return async_main

    @functools.wraps(func)
    def main(*args, **kw):
        with controller():
            return func(*args, **kw)
    return main
