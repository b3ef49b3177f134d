"""``BaseConsumer``: a custom consumer that receives every captured record, one at a time, in its own thread.

::

    embedded default:      this process's flusher ──each batch──▶ tap queue ──▶ message_handler(record)
    mq.type redis/rabbitmq: the transport's Reader (the consumer's own group) ──▶ message_handler(record) ──▶ ack

With a message queue the consumer reads through its own consumer group (the keepers' shared reader, another group
name), so it sees the records of every producer and never takes them from the keepers. Without one it taps the
records captured in this process.
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import Any, Callable

logger = logging.getLogger("flowcept")


class BaseConsumer:
    """Subclass it, call ``super().__init__()``, override :meth:`message_handler`; run it with :meth:`start` and
    end it with :meth:`stop_consumption` (``start_consumer()`` / ``stop_consumer()`` are the same).

    Args:
        group: the consumer group name (message queue only); default ``flowcept_consumer_<ClassName>``. A
            consumer restarted with the same group resumes where it stopped.
        start_from: for a new group, ``"$"`` (records published from now on) or ``"0"`` (everything kept).
        settings: flowcept settings; default: the current ones.
    """

    def __init__(self, group: str | None = None, start_from: str = "$", settings: Any = None):
        self.group = group or f"flowcept_consumer_{type(self).__name__}"
        self.start_from = start_from
        self._settings = settings
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._tap: _Tap | None = None
        self._reader = None

    def message_handler(self, msg: dict) -> bool:
        """Handle one record (a JSON-clean dict with a ``type``); return False to stop consuming."""
        return True

    # ---- lifecycle ----------------------------------------------------------------------------------------
    def start(self, target: Callable | None = None, args: tuple = (), threaded: bool = True,
              daemon: bool = False) -> "BaseConsumer":
        """Subscribe now (records captured from here on are received), then consume.

        Args:
            target: what the thread runs; default :meth:`default_thread_target` (the consumption loop).
            args: arguments for ``target``.
            threaded: run it in a new thread; False runs it in this thread until stopped.
            daemon: make that thread a daemon (it does not keep the process alive).

        Returns:
            self.
        """
        if self._thread is not None and self._thread.is_alive():
            return self
        self._subscribe()
        target = target or self.default_thread_target
        if not threaded:
            target(*args)
            return self
        self._thread = threading.Thread(target=target, args=args, name=f"flowcept-{self.group}", daemon=daemon)
        self._thread.start()
        return self

    def start_consumer(self, threaded: bool = True) -> "BaseConsumer":
        """:meth:`start` in a daemon thread (or in this thread until stopped when ``threaded=False``)."""
        return self.start(threaded=threaded, daemon=True)

    def stop_consumption(self, timeout: float | None = 10.0) -> None:
        """Stop after the record in hand and wait up to ``timeout`` for the thread to end; idempotent."""
        self._stop.set()
        tap, self._tap = self._tap, None
        if tap is not None:
            from flowcept import _runtime

            _runtime.remove_tap(tap)
            tap.queue.put(None)
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    stop_consumer = stop_consumption

    # ---- loops --------------------------------------------------------------------------------------------
    def _subscribe(self) -> None:
        from flowcept.settings import get_settings

        settings = self._settings or get_settings()
        self._stop.clear()
        if settings.mq.enabled:
            from flowcept.transport import make_reader

            reader = make_reader(settings, group=self.group, consumer=f"{self.group}-{id(self):x}",
                                 start_from=self.start_from, prefetch=16)
            reader.connect()  # the group exists from now on: nothing published after start() is missed
            self._reader = reader
        else:
            from flowcept import _runtime

            self._tap = _Tap()
            _runtime.add_tap(self._tap)

    def default_thread_target(self) -> None:
        """The consumption loop: hand each record to :meth:`message_handler` until stopped or it returns False."""
        from flowcept.context import suppress_capture

        suppress_capture()
        if self._reader is not None:
            self._consume_reader()
        elif self._tap is not None:
            self._consume_tap(self._tap)

    def _handle(self, msg: dict) -> bool:
        try:
            return self.message_handler(msg) is not False
        except Exception as exc:  # noqa: BLE001 - one bad record must not end the consumer
            logger.warning("flowcept: %s.message_handler failed on a record: %r", type(self).__name__, exc)
            return True

    def _consume_tap(self, tap: "_Tap") -> None:
        while not self._stop.is_set():
            docs = tap.queue.get()
            if docs is None:
                return
            for doc in docs:
                if not self._handle(doc):
                    self.stop_consumption(timeout=0)
                    return

    def _consume_reader(self) -> None:
        from flowcept.keeper.keeper import batch_docs

        reader = self._reader
        try:
            while not self._stop.is_set():
                try:
                    deliveries = reader.read(0.2)
                except Exception as exc:  # noqa: BLE001 - broker away: retry until stopped
                    logger.warning("flowcept: %s could not read the %s: %r", type(self).__name__,
                                   reader.describe(), exc)
                    self._stop.wait(1.0)
                    continue
                for delivery in deliveries:
                    try:
                        docs = batch_docs(delivery)
                    except Exception as exc:  # noqa: BLE001 - a malformed batch is skipped, not fatal
                        logger.warning("flowcept: %s skipped an undecodable batch %s: %r", type(self).__name__,
                                       delivery.tag, exc)
                        docs = []
                    for doc in docs:
                        if not self._handle(doc):
                            self._stop.set()
                            break
                    try:
                        reader.ack([delivery])
                    except Exception as exc:  # noqa: BLE001 - not acknowledged: it comes again, harmless
                        logger.warning("flowcept: %s could not acknowledge a batch: %r", type(self).__name__, exc)
                    if self._stop.is_set():
                        return
        finally:
            self._reader = None
            reader.close()


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
