"""Failures inside capture: logged (rate-limited) and counted, never raised into user code.

One guard, two forms: ``with internal_errors("where"):`` around a step, and ``@guarded("where")`` on a function
whose failure must not reach the caller (it then returns ``default``). Both catch ``Exception`` only: a
``KeyboardInterrupt`` or ``SystemExit`` raised inside capture still ends the program as the user expects.
"""

from __future__ import annotations

import functools
import logging
import time
from typing import Any, Callable, TypeVar

logger = logging.getLogger("flowcept")

_LOG_EVERY_SECS = 10.0
F = TypeVar("F", bound=Callable[..., Any])


def _counters():
    from flowcept._runtime import RUNTIME

    return RUNTIME


def report_internal_error(where: str, exc: BaseException | None = None) -> None:
    """Count one capture failure and log it, at most once per ``where`` every few seconds."""
    state = _counters()
    state.capture_errors += 1
    now = time.monotonic()
    if now - state.error_logged_at.get(where, -1e9) >= _LOG_EVERY_SECS:
        state.error_logged_at[where] = now
        logger.warning("flowcept capture failure in %s: %r (the user's program is unaffected)", where, exc,
                       exc_info=exc is not None and logger.isEnabledFor(logging.DEBUG))


def report_capture_warning(where: str, message: str) -> None:
    """Count one capture warning (input kept, but changed to be storable) and log it, rate-limited per ``where``."""
    state = _counters()
    state.capture_warnings += 1
    now = time.monotonic()
    if now - state.error_logged_at.get(where, -1e9) >= _LOG_EVERY_SECS:
        state.error_logged_at[where] = now
        logger.warning("flowcept capture: %s (%s)", message, where)


class internal_errors:  # noqa: N801 - reads as a statement: `with internal_errors("telemetry"):`
    """Context manager: an ``Exception`` raised inside is reported (:func:`report_internal_error`) and suppressed."""

    __slots__ = ("where",)

    def __init__(self, where: str):
        self.where = where

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc is not None and isinstance(exc, Exception):
            report_internal_error(self.where, exc)
            return True
        return False


def guarded(where: str, default: Any = None) -> Callable[[F], F]:
    """Decorator: a failure of the function is reported and ``default`` returned instead."""

    def decorate(func: F) -> F:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return func(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - the one place capture failures are caught
                report_internal_error(where, exc)
                return default
        return wrapper  # type: ignore[return-value]
    return decorate


def capture_error_count() -> int:
    """How many capture failures happened in this process so far."""
    return _counters().capture_errors


def capture_warning_count() -> int:
    """How many capture warnings (inputs changed to be storable: colliding keys, NaN, oversized containers)."""
    return _counters().capture_warnings
