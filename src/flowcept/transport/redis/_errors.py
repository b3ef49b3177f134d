"""The one Redis error map: redis-py errors become :class:`flowcept.errors.TransportError` (or
:class:`flowcept.errors.BrokerUnreachableError` when Redis does not answer) at the seam."""

from __future__ import annotations

from flowcept.errors import BackendUnavailableError
from flowcept.transport._errors import make_error_map

try:
    from redis import exceptions as redis_exc
except ImportError as _exc:  # pragma: no cover - exercised without the extra
    raise BackendUnavailableError("the redis transport (mq.type: redis)", "redis") from _exc

# Failures that mean "Redis is away": retried, then spilled.
LOST = (redis_exc.ConnectionError, redis_exc.TimeoutError, redis_exc.BusyLoadingError)


#: ``with redis_errors(action):`` translates redis-py errors raised by ``action``.
redis_errors = make_error_map("Redis", LOST, redis_exc.RedisError)


def is_missing_group(exc: BaseException) -> bool:
    """Whether a translated error says the stream or its consumer group is gone (e.g. Redis restarted empty)."""
    return "NOGROUP" in str(exc)


def is_existing_group(exc: BaseException) -> bool:
    return "BUSYGROUP" in str(exc)
