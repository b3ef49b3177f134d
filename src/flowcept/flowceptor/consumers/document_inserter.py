"""``DocumentInserter``: the reference's DB writer. Here it is a keeper (:class:`flowcept.keeper.Keeper`), which
reads the message queue through a consumer group and acknowledges only what the store committed."""

from __future__ import annotations

from typing import Any


class DocumentInserter:
    """Store what the message queue holds, in a thread (``start()``) or in the foreground (``start(threaded=False)``).

    The reference's arguments (``check_safe_stops``, ``bundle_exec_id``) are accepted and unused: the keeper serves
    every producer and ``Flowcept.stop()`` waits for it exactly.

    Raises:
        FlowceptError: no store is enabled. BackendUnavailableError: the message queue's client is not installed.
    """

    def __init__(self, check_safe_stops: bool = True, bundle_exec_id: Any = None, **_ignored: Any):
        from flowcept.keeper import Keeper
        from flowcept.settings import get_settings

        self._keeper = Keeper(get_settings())

    def start(self, threaded: bool = True, daemon: bool = True) -> "DocumentInserter":
        """Start storing: in a background thread, or (``threaded=False``) in this thread until stopped."""
        if threaded:
            self._keeper.start(daemon=daemon)
        else:
            self._keeper.run()
        return self

    def stop(self, bundle_exec_id: Any = None, timeout: float | None = 30.0) -> None:
        """Finish and acknowledge the batch in hand, then close the store connection."""
        self._keeper.close(timeout)
