"""The ``redis`` transport's producer: each flushed batch becomes one entry of a Redis Stream.

::

    flusher ──write(batch)──▶ XADD <mq.channel> * b <JSON array> p <producer> s <seq> n <count> e json
               │  retry, spill and replay: flowcept.transport._publisher
               ▼
    retained copies (flowcept.transport.redis.retained) until the keepers' group acknowledged them; resent when
    the server restarted without them (noticed by its run id, or by our latest entry missing after an outage)

Entry layout: ``b`` is the batch as one JSON array of records (the bytes the flusher already encoded, so the
producer pays no second encoding; ``e`` says ``json``; a keeper also accepts ``msgpack`` entries from other
producers), ``p`` the producer id (host:pid:random), ``s`` the producer's sequence number, ``n`` the record count.
"""

from __future__ import annotations

import logging
import os
import time

from flowcept.errors import TransportError
from flowcept.transport import CONFIRMED, Confirmation
from flowcept.transport._publisher import Publisher
from flowcept.transport.redis._client import (acked_below, close_quietly, connect, group_name, mark_producer, parse_id,
                                              workflow_flushed)
from flowcept.transport.redis._errors import redis_errors
from flowcept.transport.redis.retained import RetainedCopies

logger = logging.getLogger("flowcept")

_PRUNE_EVERY_SECS = 0.5


class RedisStreamTransport(Publisher):
    """Appends each batch to the Redis Stream ``mq.channel`` (at-least-once; see the module docstring).

    Args:
        mq: the ``mq`` settings section.

    Attributes:
        last_id: the id of this process's latest entry.
    """

    name = "redis"
    broker = "Redis"

    def __init__(self, mq):
        super().__init__(mq)
        self.stream = mq.channel
        self.group = group_name(mq)
        self.last_id: str | None = None
        self._client = None
        self._retained = RetainedCopies(os.path.splitext(self.spill.path)[0])
        self._run_id: str | None = None  # the Redis server's run id, to notice restarts
        self._resending = False
        self._last_prune = 0.0

    @classmethod
    def from_settings(cls, settings) -> "RedisStreamTransport":
        return cls(settings.mq)

    @property
    def client(self):
        self._check_fork()
        with self._lock:
            if self._client is None:
                self._client = connect(self.mq)
            return self._client

    def _reset_after_fork(self) -> None:
        self._client = None
        self.last_id = None
        self._retained = RetainedCopies(os.path.splitext(self.spill.path)[0])
        self._run_id = None

    # ---- Publisher ----------------------------------------------------------------------------------------
    def _publish(self, body: bytes, count: int, seq: int) -> None:
        fields = {"b": body, "p": self.producer_id, "s": seq, "n": count, "e": "json"}
        with redis_errors("XADD"):
            entry_id = self.client.xadd(self.stream, fields)
        self._on_sent(entry_id, body, count)

    def _ping(self) -> None:
        with redis_errors("PING"):
            self.client.ping()

    def _recover(self) -> None:
        with redis_errors("checking for a restart"):
            self._resend_if_lost()

    def _disconnect(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        close_quietly(client)

    def _where(self) -> str:
        if self.mq.uri:
            from flowcept.settings import _redact_uri

            return _redact_uri(self.mq.uri)
        return f"{self.mq.host}:{self.mq.port}"

    # ---- retained copies ----------------------------------------------------------------------------------
    def _on_sent(self, entry_id, body: bytes, count: int) -> None:
        entry_id = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
        self.last_id = entry_id
        self._retained.add(entry_id, body, count)
        now = time.monotonic()
        if now - self._last_prune >= _PRUNE_EVERY_SECS:
            self._last_prune = now
            self._prune()

    def _prune(self) -> None:
        try:
            self._check_restart()
            boundary = acked_below(self.client, self.stream, self.group)
        except TransportError:
            return
        if boundary is not None:
            self._retained.prune(boundary)

    def _check_restart(self) -> None:
        """A new server run id means Redis restarted; redis-py may have reconnected without an error, so this is
        where a restart that lost the stream is noticed (checked on each prune and each flush)."""
        if self._resending:
            return  # called back from a resend in progress (through _on_sent): nothing new to learn
        with redis_errors("INFO server"):
            run_id = self.client.info("server").get("run_id")
            if self._run_id is not None and run_id != self._run_id:
                self._resending = True
                try:
                    self._resend_if_lost()
                finally:
                    self._resending = False
        self._run_id = run_id

    def _resend_if_lost(self) -> None:
        """If our oldest copy (or latest entry) is gone, the server restarted empty: resend every copy.

        Raises redis-py errors (callers translate them)."""
        client = self.client
        # Acknowledged entries stay in the stream (nothing trims it), so a missing one means the stream was lost.
        probe = self._retained.oldest_id() or self.last_id
        if probe is None or client.xrange(self.stream, probe, probe):
            return
        segments, items = self._retained.take()
        logger.warning("flowcept: Redis restarted without entry %s; resending %d unconfirmed batch(es) and %d "
                       "segment(s) of older ones kept on disk", probe, len(items), len(segments))
        try:
            for body, count in self._retained.batches(segments, items):
                self._seq += 1
                fields = {"b": body, "p": self.producer_id, "s": self._seq, "n": count, "e": "json"}
                self._on_sent(client.xadd(self.stream, fields), body, count)
        except BaseException:
            self._retained.put_back(segments, items)
            raise
        self._retained.discard(segments)

    # ---- Transport ----------------------------------------------------------------------------------------
    def flush(self, timeout: float | None = None) -> bool:
        done = super().flush(timeout)
        if self.last_id is not None and self._down_since is None:
            try:
                self._check_restart()
            except TransportError as exc:
                logger.debug("flowcept: could not check the Redis server at flush: %r", exc)
        return done

    def begin_workflow(self, workflow_id: str) -> None:
        """Note this producer as running for ``workflow_id`` (see :func:`workflow_flushed`)."""
        self._mark(workflow_id, "running")

    def mark_flushed(self, workflow_id: str) -> None:
        """Note that everything this producer captured for ``workflow_id`` is in Redis."""
        self._mark(workflow_id, f"flushed {self.last_id or ''}".rstrip())

    register_workflow = begin_workflow  # the name before the Transport protocol

    def _mark(self, workflow_id: str, state: str) -> None:
        try:
            mark_producer(self.client, self.stream, workflow_id, self.producer_id, state)
        except TransportError as exc:
            logger.warning("flowcept: could not note producer state %r in Redis: %s", state, exc)

    def confirm(self, workflow_id: str, deadline: float, wait_stored: bool = False) -> Confirmation:
        """Replay spilled records (until ``deadline``), note this producer flushed, and with ``wait_stored`` wait
        until every producer of the workflow has flushed and the keepers acknowledged it all."""
        if not self.flush(max(0.0, deadline - time.monotonic())):
            return Confirmation(False, self.unconfirmed(), self.spill.path)
        self.mark_flushed(workflow_id)
        if not wait_stored:
            return CONFIRMED
        pause = 0.002
        while True:
            try:
                if workflow_flushed(self.client, self.stream, self.group, workflow_id)[0]:
                    return CONFIRMED
            except TransportError as exc:  # broker away: keep waiting until the deadline
                logger.debug("flowcept: stop() could not read the keepers' progress: %r", exc)
            left = deadline - time.monotonic()
            if left <= 0:
                return Confirmation(False, self.unconfirmed(), None)
            time.sleep(min(pause, left))
            pause = min(pause * 2, 0.05)

    def unconfirmed(self) -> int:
        """Records this process sent that the keepers have not acknowledged yet, plus those spilled (best effort)."""
        try:
            boundary = acked_below(self.client, self.stream, self.group)
        except TransportError:
            boundary = None
        return self._retained.unconfirmed(boundary) + self.spilled

    def close(self) -> None:
        if self._closed:
            return
        if self._pid == os.getpid():
            self._retained.close()
        super().close()


__all__ = ["RedisStreamTransport", "parse_id"]
