"""Failures inside capture: logged (rate-limited) and counted, never raised into user code."""

from __future__ import annotations

import logging
import time

logger = logging.getLogger("flowcept")

_counts = {"capture_errors": 0}
_last_logged: dict[str, float] = {}
_LOG_EVERY_SECS = 10.0


def report_internal_error(where: str, exc: BaseException | None = None) -> None:
    """Count one capture failure and log it, at most once per ``where`` every few seconds."""
    _counts["capture_errors"] += 1
    now = time.monotonic()
    if now - _last_logged.get(where, -1e9) >= _LOG_EVERY_SECS:
        _last_logged[where] = now
        logger.warning("flowcept capture failure in %s: %r (the user's program is unaffected)", where, exc,
                       exc_info=exc is not None and logger.isEnabledFor(logging.DEBUG))


def capture_error_count() -> int:
    """How many capture failures happened in this process so far."""
    return _counts["capture_errors"]
