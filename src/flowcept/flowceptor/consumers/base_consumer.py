"""``BaseConsumer``: a custom consumer that receives every captured record, one at a time, in its own thread.

::

    embedded default:  this process's flusher ──each batch──▶ consumer queue ──▶ message_handler(record)
    mq.type redis:     Redis Stream ──XREADGROUP (the consumer's own group)──▶ message_handler(record)

With a message queue the consumer reads through its own consumer group, so it sees the records of every producer
and never takes them from the keepers (each group gets every entry). Without one it taps the records captured in
this process.
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import Any

logger = logging.getLogger("flowcept")


class BaseConsumer:
    """Subclass it and override :meth:`message_handler`; then ``start_consumer()`` / ``stop_consumer()``.

    Args:
        group: the consumer group name (message queue only); default ``flowcept_consumer_<ClassName>``. A
            consumer restarted with the same group resumes where it stopped.
        start_from: for a new group, ``"$"`` (records published from now on) or ``"0"`` (the whole stream).
        settings: flowcept settings; default: the current ones.
    """

    def __init__(self, group: str | None = None, start_from: str = "$", settings: Any = None):
        self.group = group or f"flowcept_consumer_{type(self).__name__}"
        self.start_from = start_from
        self._settings = settings
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._tap: _Tap | None = None

    def message_handler(self, msg: dict) -> bool:
        """Handle one record (a JSON-clean dict with a ``type``); return False to stop consuming."""
        return True

    # ---- lifecycle ----------------------------------------------------------------------------------------
    def start_consumer(self, threaded: bool = True) -> "BaseConsumer":
        """Start receiving records (in a daemon thread, or in this thread until stopped when ``threaded=False``)."""
        if self._thread is not None and self._thread.is_alive():
            return self
        from flowcept.settings import get_settings

        settings = self._settings or get_settings()
        self._stop.clear()
        if settings.mq.enabled:
            target = self._consume_stream
            args: tuple = (settings,)
        else:
            from flowcept import _runtime

            self._tap = _Tap()
            _runtime.add_tap(self._tap)
            target, args = self._consume_tap, ()
        if not threaded:
            target(*args)
            return self
        self._thread = threading.Thread(target=target, args=args, name=f"flowcept-{self.group}", daemon=True)
        self._thread.start()
        return self

    def stop_consumer(self, timeout: float | None = 10.0) -> None:
        """Stop after the record in hand; idempotent."""
        self._stop.set()
        if self._tap is not None:
            from flowcept import _runtime

            _runtime.remove_tap(self._tap)
            self._tap.queue.put(None)
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    # ---- loops --------------------------------------------------------------------------------------------
    def _handle(self, msg: dict) -> bool:
        try:
            return self.message_handler(msg) is not False
        except Exception as exc:  # noqa: BLE001 - one bad record must not end the consumer
            logger.warning("flowcept: %s.message_handler failed on a record: %r", type(self).__name__, exc)
            return True

    def _consume_tap(self) -> None:
        from flowcept.context import suppress_capture

        suppress_capture()
        tap = self._tap
        while not self._stop.is_set():
            docs = tap.queue.get()
            if docs is None:
                return
            for doc in docs:
                if not self._handle(doc):
                    self._stop.set()
                    return

    def _consume_stream(self, settings) -> None:
        import orjson

        from flowcept.context import suppress_capture
        from flowcept.keeper.keeper import decode_entry
        from flowcept.transport.redis_streams import connect, redis_errors

        suppress_capture()
        client = connect(settings.mq)
        stream = settings.mq.channel
        name = f"{self.group}-{threading.get_ident()}"
        with redis_errors("creating the consumer group"):
            try:
                client.xgroup_create(stream, self.group, id=self.start_from, mkstream=True)
            except Exception as exc:  # noqa: BLE001 - BUSYGROUP: the group exists, resume it
                if "BUSYGROUP" not in str(exc):
                    raise
        try:
            while not self._stop.is_set():
                try:
                    replies = client.xreadgroup(self.group, name, {stream: ">"}, count=16, block=200)
                except Exception as exc:  # noqa: BLE001 - broker away: retry until stopped
                    logger.warning("flowcept: %s could not read the stream: %r", type(self).__name__, exc)
                    self._stop.wait(1.0)
                    continue
                for _, entries in replies or ():
                    for entry_id, fields in entries:
                        try:
                            inner, docs, _ = decode_entry(fields)
                            if docs is None:
                                docs = orjson.loads(b"[" + inner + b"]") if inner else []
                        except Exception as exc:  # noqa: BLE001 - a malformed entry is skipped, not fatal
                            logger.warning("flowcept: %s skipped an undecodable entry %s: %r",
                                           type(self).__name__, entry_id, exc)
                            docs = []
                        for doc in docs:
                            if not self._handle(doc):
                                self._stop.set()
                                break
                        client.xack(stream, self.group, entry_id)
                        if self._stop.is_set():
                            return
        finally:
            client.close()


class _Tap:
    """A sink that hands each batch's records to a consumer thread (never blocks the flusher)."""

    name = "consumer"
    primary = False

    def __init__(self):
        self.queue: queue.SimpleQueue = queue.SimpleQueue()

    def write(self, batch) -> int:
        self.queue.put(batch.docs)
        return 0

    def flush(self, timeout: float | None = None) -> bool:
        return True

    def close(self) -> None:
        pass
