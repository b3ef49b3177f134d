"""Transports: how batches leave the producer process.

::

    BatchBuffer flusher ──write(batch)──▶ Transport ──▶ embedded: the Store, in this process
                                                   └─▶ redis:    a Redis Stream, read by a Keeper

A transport is a :class:`flowcept.buffer.Sink`: ``write(batch)`` (an :class:`flowcept.buffer.EncodedBatch`) runs on
the flusher thread, may block, and returns how many records it could not keep. ``flush(timeout)`` returns once everything written is acknowledged.
``close()`` is idempotent. Adding one = one module + one line in :data:`TRANSPORTS`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flowcept._registry import load_backend

if TYPE_CHECKING:
    from flowcept.buffer import Sink

TRANSPORTS = {
    "embedded": "flowcept.transport.embedded:EmbeddedTransport",
    "redis": "flowcept.transport.redis_streams:RedisStreamTransport",
}


def make_transport(settings) -> "Sink | None":
    """The transport the settings ask for: redis when ``mq.enabled``, else embedded (None when there is no store)."""
    if settings.mq.enabled:
        return load_backend(TRANSPORTS, settings.mq.type, "mq.type").from_settings(settings)
    return load_backend(TRANSPORTS, "embedded", "transport").from_settings(settings)
