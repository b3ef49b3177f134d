"""``FlowceptLogger``: the reference's logger factory, returning the ``flowcept`` logger configured from settings."""

from __future__ import annotations

import logging


class FlowceptLogger:
    """``FlowceptLogger()`` returns the process's ``flowcept`` :class:`logging.Logger`, with the handlers the ``log``
    settings ask for (the same logger every flowcept module writes to)."""

    def __new__(cls) -> logging.Logger:  # type: ignore[misc]
        from flowcept._logging import configure_logging
        from flowcept.settings import get_settings

        configure_logging(get_settings().log)
        return logging.getLogger("flowcept")
