"""The ``flowcept`` logger's handlers, from the ``log`` settings (configured once per settings object)."""

from __future__ import annotations

import logging
import os

logger = logging.getLogger("flowcept")
_configured: list = []  # [settings.log] last applied, so repeated Flowcept() calls do not stack handlers
_FORMAT = "%(asctime)s %(levelname)s [%(name)s] %(message)s"


def configure_logging(log_settings) -> None:
    """Attach a stderr handler (``log_stream_level``) and a file handler (``log_file_level`` at ``log_path``;
    ``default`` is ``flowcept.log`` in the working directory). ``disable`` leaves that handler out."""
    if _configured and _configured[0] == log_settings:
        return
    for handler in list(logger.handlers):
        if getattr(handler, "_flowcept", False):
            logger.removeHandler(handler)
            handler.close()
    levels = []
    stream_level = _level(log_settings.log_stream_level)
    if stream_level is not None:
        handler = logging.StreamHandler()
        handler.setLevel(stream_level)
        handler.setFormatter(logging.Formatter(_FORMAT))
        handler._flowcept = True
        logger.addHandler(handler)
        levels.append(stream_level)
    file_level = _level(log_settings.log_file_level)
    if file_level is not None:
        path = "flowcept.log" if log_settings.log_path in (None, "", "default") else log_settings.log_path
        try:
            from flowcept._files import create_private_file

            handler = logging.FileHandler(create_private_file(os.path.expanduser(path)))  # 0600 when new
        except OSError as exc:
            logger.warning("flowcept: cannot open log file %s (log.log_path): %s", path, exc)
        else:
            handler.setLevel(file_level)
            handler.setFormatter(logging.Formatter(_FORMAT))
            handler._flowcept = True
            logger.addHandler(handler)
            levels.append(file_level)
    if levels:
        logger.setLevel(min(levels))
    _configured[:] = [log_settings]


def _level(name: str | None) -> int | None:
    if not name or str(name).lower() == "disable":
        return None
    value = logging.getLevelName(str(name).upper())
    return value if isinstance(value, int) else None
