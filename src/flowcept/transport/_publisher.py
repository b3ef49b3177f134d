"""Producer and retry, for every broker transport: publish each batch, retry a lost broker, spill, replay.

::

    flusher ──write(batch)──▶ _publish(body, count)           (the backend: XADD, basic_publish + confirm)
               │  BrokerUnreachableError: retry with backoff while the buffer keeps queueing (capture runs on)
               │  still unreachable after mq.reconnect_deadline_secs (or past the stop() deadline, see hurry):
               │  append the batch to this process's spill file and carry on
               │  TransportError (the broker answers but refuses): spill at once, retrying will not help
               ▼
    once the broker answers again, the spill file is replayed (oldest first, new batches queue behind it) and
    deleted

A backend subclasses :class:`Publisher` and implements ``_publish``, ``_ping``, ``_disconnect`` and ``_where``;
its library's errors reach this module only as :class:`flowcept.errors.TransportError` (translated by the
backend's one error map).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time

from flowcept.errors import BrokerUnreachableError, TransportError
from flowcept.transport._spill import SpillFile

logger = logging.getLogger("flowcept")

_BACKOFF_MAX_SECS = 1.0
_RETRY_AFTER_DEADLINE_SECS = 1.0  # past the deadline, try the broker at most this often; spill meanwhile


def new_producer_id() -> str:
    """``host:pid:random``: unique per producer process (re-drawn after fork)."""
    return f"{socket.gethostname()}:{os.getpid()}:{os.urandom(3).hex()}"


class Publisher:
    """The broker-independent producer: retries, spill and replay, fork safety, counters.

    ``write`` runs on the flusher thread and blocks while the broker is away (up to ``reconnect_deadline_secs`` per
    outage, then spills). ``flush`` returns True when every batch written so far is in the broker (False when some
    wait in the spill file). ``hurry`` may be called from any thread.

    Args:
        mq: the ``mq`` settings section.

    Attributes:
        sent: records the broker acknowledged.
        spill: this process's :class:`flowcept.transport._spill.SpillFile`.
        producer_id: ``host:pid:random``.
    """

    name = "broker"
    primary = True
    broker = "the broker"  # for log messages

    def __init__(self, mq):
        self.mq = mq
        self.reconnect_deadline_secs = float(mq.reconnect_deadline_secs)
        self.producer_id = new_producer_id()
        self.sent = 0
        self.spill = SpillFile(mq.spill_path)
        self._seq = 0
        self._pid = os.getpid()
        self._down_since: float | None = None
        self._last_try = 0.0
        self._hurry_by: float | None = None
        self._lost_seen = False  # an outage happened: the backend may have something to repair (_recover)
        self._lock = threading.RLock()  # client (re)creation, fork reset
        self._closed = False

    # ---- what a backend implements ------------------------------------------------------------------------
    def _publish(self, body: bytes, count: int, seq: int) -> None:
        """Put one batch (a JSON array of ``count`` records) in the broker; return once the broker has it."""
        raise NotImplementedError

    def _ping(self) -> None:
        """Raise :class:`BrokerUnreachableError` unless the broker answers."""
        raise NotImplementedError

    def _recover(self) -> None:
        """Called (inside the retry loop) before the first publish after an outage: repair what it lost."""

    def _disconnect(self) -> None:
        """Drop the connection (it is re-made on the next use)."""

    def _where(self) -> str:
        return f"{self.mq.host}:{self.mq.port}"

    def _reset_after_fork(self) -> None:
        """Forget the parent's connections and per-producer state (called in a forked child, under the lock)."""

    # ---- properties ---------------------------------------------------------------------------------------
    @property
    def spilled(self) -> int:
        """Records waiting in the spill file."""
        return self.spill.records

    @property
    def spill_path(self) -> str:
        return self.spill.path

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _check_fork(self) -> None:
        """In a forked child, start over as a producer of its own: the parent's sockets, spill file and outage
        state are the parent's."""
        if self._pid == os.getpid():
            return
        with self._lock:
            if self._pid != os.getpid():
                self._pid = os.getpid()
                self.producer_id = new_producer_id()
                self._seq, self.sent = 0, 0
                self.spill = SpillFile(self.mq.spill_path)
                self._down_since, self._hurry_by, self._lost_seen, self._last_try = None, None, False, 0.0
                self._reset_after_fork()

    # ---- flusher thread -----------------------------------------------------------------------------------
    def write(self, batch) -> int:
        self._check_fork()
        self._send(batch.array(), len(batch), batch)
        return 0

    def _send(self, body: bytes, count: int, batch=None) -> None:
        if self.spilled:
            # Records wait on disk (the broker was lost): new batches queue behind them, in order, and the spill
            # file is sent on as soon as the broker answers again.
            self._spill(body, count, batch)
            if self._broker_back():
                self._replay_some()
            return
        self._seq += 1
        seq, delay = self._seq, 0.05
        while True:
            now = time.monotonic()
            deadline_passed = self._down_since is not None and (
                now - self._down_since >= self.reconnect_deadline_secs
                or (self._hurry_by is not None and now >= self._hurry_by))
            if deadline_passed and now - self._last_try < _RETRY_AFTER_DEADLINE_SECS:
                self._spill(body, count, batch)
                return
            self._last_try = now
            try:
                if self._lost_seen:
                    self._recover()
                    self._lost_seen = False
                self._publish(body, count, seq)
            except BrokerUnreachableError as exc:
                if self._down_since is None:
                    self._down_since = now
                    logger.warning("flowcept: %s at %s is unreachable (%s); retrying for %.0fs while records "
                                   "wait in the buffer", self.broker, self._where(), exc, self.reconnect_deadline_secs)
                self._lost_seen = True
                self._disconnect()
                if deadline_passed:
                    self._spill(body, count, batch)
                    return
                time.sleep(delay)
                delay = min(delay * 2, _BACKOFF_MAX_SECS)
                continue
            except TransportError as exc:
                # Refused (out of memory, wrong type, ...): retrying will not help; keep the records on disk.
                logger.warning("flowcept: %s refused a batch (%s)", self.broker, exc)
                self._spill(body, count, batch)
                return
            self.sent += count
            if self._down_since is not None:
                logger.warning("flowcept: %s at %s is reachable again", self.broker, self._where())
                self._down_since = None
            return

    def _broker_back(self) -> bool:
        """Whether the broker answers (after an outage, asked at most every _RETRY_AFTER_DEADLINE_SECS)."""
        if self._down_since is None:
            return True
        now = time.monotonic()
        if now - self._last_try < _RETRY_AFTER_DEADLINE_SECS:
            return False
        self._last_try = now
        try:
            self._ping()
            if self._lost_seen:
                self._recover()
                self._lost_seen = False
        except TransportError:
            self._disconnect()
            return False
        logger.warning("flowcept: %s at %s is reachable again", self.broker, self._where())
        self._down_since = None
        return True

    def _spill(self, body: bytes, count: int, batch=None) -> None:
        if not count:
            return
        if batch is None:
            from flowcept.buffer import EncodedBatch

            batch = EncodedBatch(body, count)
        first = not self.spilled
        self.spill.append(batch)
        if first:
            logger.warning("flowcept: %s at %s stayed unreachable; records are being spilled to %s (load them "
                           "later with `flowcept ingest %s`)", self.broker, self._where(), self.spill.path,
                           self.spill.path)

    def _replay_some(self) -> None:
        """Send spilled records on; the spill file is deleted once it is all sent."""

        def send(body: bytes, count: int) -> None:
            self._seq += 1
            self._publish(body, count, self._seq)
            self.sent += count

        try:
            sent = self.spill.replay(send)
        except BrokerUnreachableError as exc:
            logger.warning("flowcept: %s lost while replaying %s (%s); it will be retried", self.broker,
                           self.spill.path, exc)
            self._down_since = time.monotonic()
            self._lost_seen = True
            self._disconnect()
            return
        except TransportError as exc:
            logger.warning("flowcept: %s refused replayed records from %s (%s)", self.broker, self.spill.path, exc)
            return
        if sent and not self.spilled:
            logger.warning("flowcept: every spilled record from %s is now in %s", self.spill.path, self.broker)

    # ---- any thread ---------------------------------------------------------------------------------------
    def hurry(self, deadline: float | None) -> None:
        """Spill instead of retrying past ``deadline`` (a ``time.monotonic()`` value): stop() is waiting."""
        self._hurry_by = deadline

    def flush(self, timeout: float | None = None) -> bool:
        """Send spilled records on (waiting for a lost broker to come back) until none is left or the deadline
        passes: ``timeout``, else the stop() deadline given to :meth:`hurry`, else ``reconnect_deadline_secs``.

        Returns:
            True when every record written so far is in the broker.
        """
        self._check_fork()
        if self.spilled:
            now = time.monotonic()
            deadline = now + timeout if timeout is not None else (self._hurry_by or now + self.reconnect_deadline_secs)
            while self.spilled and time.monotonic() < deadline:
                if not self._broker_back():
                    time.sleep(0.05)
                    continue
                self._replay_some()
                if self.spilled:
                    time.sleep(0.02)
        self.spill.sync()
        return self.spilled == 0

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._check_fork()  # in a forked child, the parent's connection is forgotten, never closed from here
        self.spill.close()
        self._disconnect()
