"""One error map per broker, made by one factory: library errors become :class:`flowcept.errors.TransportError` at
the seam, and those that mean the broker does not answer become :class:`flowcept.errors.BrokerUnreachableError`."""

from __future__ import annotations

import contextlib
from typing import Callable, ContextManager

from flowcept.errors import BrokerUnreachableError, TransportError


def make_error_map(broker: str, lost: tuple, base: type) -> Callable[[str], ContextManager[None]]:
    """A context manager factory ``errors(action)`` translating ``lost`` exceptions into
    :class:`BrokerUnreachableError` and other ``base`` exceptions into :class:`TransportError`, chained."""

    @contextlib.contextmanager
    def errors(action: str):
        try:
            yield
        except lost as exc:
            raise BrokerUnreachableError(f"{broker}: {action} failed: {exc!r}") from exc
        except base as exc:
            raise TransportError(f"{broker}: {action} failed: {exc!r}") from exc

    return errors
