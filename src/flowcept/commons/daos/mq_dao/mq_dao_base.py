"""``MQDao``: the reference's message-queue object, as far as user code uses it: sending messages through the
configured transport (the running pipeline when a Flowcept runs in this process, else the transport the settings
choose: the embedded store, or the Redis stream a keeper reads)."""

from __future__ import annotations

from typing import Iterable

from flowcept import context as _ctx


class MQDao:
    """Send records through the configured transport. Build one with :meth:`build`."""

    def __init__(self, settings=None):
        from flowcept.settings import get_settings

        self.settings = settings or get_settings()

    @classmethod
    def build(cls, *args, **kwargs) -> "MQDao":
        """An instance for the loaded settings (the reference's factory; its arguments are accepted and unused)."""
        return cls()

    def send_message(self, message: dict) -> None:
        """Send one record (a dict with ``type`` and its id key, e.g. ``{"type": "task", "task_id": ...}``)."""
        self.bulk_publish([message])

    def bulk_publish(self, messages: Iterable[dict]) -> None:
        """Send several records. With a Flowcept running they join its pipeline (and reach the store when it
        flushes); otherwise they are written through the transport now, before this returns.

        Raises:
            TransportError / StoreError: the transport could not keep them.
        """
        from flowcept.capture.emit import emit

        messages = [dict(m) for m in messages]
        scope = _ctx.current_scope()
        if scope is not None:
            for message in messages:
                emit(message, scope)
            return
        from flowcept.buffer import encode_batch
        from flowcept.errors import TransportError
        from flowcept.transport import make_transport

        transport = make_transport(self.settings)
        if transport is None:
            raise TransportError("no transport is configured (offline mode without a message queue): enable "
                                 "databases.sqlite, databases.postgres or mq in the settings")
        try:
            lost = transport.write(encode_batch(messages))
            transport.flush(self.settings.buffer.stop_timeout_secs)
        finally:
            transport.close()
        if lost:
            raise TransportError(f"{lost} of {len(messages)} message(s) could not be sent")

    def liveness_test(self) -> bool:
        """Whether the configured message queue (or, without one, the store) answers."""
        from flowcept.controller import Flowcept

        return Flowcept.services_alive()
