"""The ``rabbitmq`` transport's producer: each flushed batch is one persistent message, confirmed by the broker.

::

    flusher ──write(batch)──▶ basic_publish(exchange=<mq.channel>, body=<JSON array>, persistent,
               │                            headers {p: producer, s: seq, n: count, e: json},
               │                            reply_to=<channel>.stored.<producer>)  ── waits for the publisher confirm
               │  retry, spill and replay: flowcept.transport._publisher
               ▼
    keepers, after committing a batch, send its seq to the producer's "stored" queue; confirm() at stop() reads
    them until every batch this process sent is stored (or the deadline passes)

The broker confirms a publish once every bound quorum queue has it, so a confirmed batch survives a keeper that is
down, starts late or is killed, and a broker restart.
"""

from __future__ import annotations

import logging
import threading
import time

import orjson

from flowcept.errors import TransportError
from flowcept.transport import CONFIRMED, Confirmation
from flowcept.transport._publisher import Publisher
from flowcept.transport.rabbitmq._amqp import (amqp_errors, close_quietly, connect, declare_group, declare_stored,
                                               pika, stored_queue, where)

logger = logging.getLogger("flowcept")

_DRAIN_EVERY_SECS = 0.5
_IDLE_CHECK_SECS = 10.0


class RabbitMQTransport(Publisher):
    """Publishes each batch to the fanout exchange ``mq.channel`` with publisher confirms (see the module docstring).

    Args:
        mq: the ``mq`` settings section.
    """

    name = "rabbitmq"
    broker = "RabbitMQ"

    def __init__(self, mq):
        super().__init__(mq)
        self._connection = None
        self._channel = None
        self._stored_queue = stored_queue(mq, self.producer_id)
        self._unstored: dict[int, int] = {}  # seq -> records, for batches no keeper said it stored yet
        self._unstored_lock = threading.Lock()
        self._in_flight: int | None = None  # the seq being published (the flusher publishes one at a time)
        self._stored_in_flight = False
        self._last_drain = 0.0
        self._last_used = 0.0

    @classmethod
    def from_settings(cls, settings) -> "RabbitMQTransport":
        return cls(settings.mq)

    def _reset_after_fork(self) -> None:
        self._connection = self._channel = None  # the parent's socket: never used (nor closed) here
        self._stored_queue = stored_queue(self.mq, self.producer_id)
        self._unstored = {}
        self._unstored_lock = threading.Lock()
        self._in_flight, self._stored_in_flight = None, False

    def _open(self):
        """The flusher's channel (confirm mode), connecting and declaring the queues on first use."""
        self._check_fork()
        now = time.monotonic()
        if self._channel is not None and now - self._last_used > _IDLE_CHECK_SECS:
            # Idle past a heartbeat or two: the broker may have closed the connection. Find out now (this also
            # answers its heartbeats) and reconnect quietly, rather than report an outage on the next publish.
            try:
                with amqp_errors("checking an idle connection"):
                    self._connection.process_data_events(0)
            except TransportError:
                self._disconnect()
        self._last_used = now
        if self._channel is None or not self._channel.is_open:
            self._disconnect()
            connection = connect(self.mq)
            with amqp_errors("declaring the exchange and queues"):
                channel = connection.channel()
                declare_group(channel, self.mq)
                declare_stored(channel, self.mq, self.producer_id)
                channel.confirm_delivery()
            self._connection, self._channel = connection, channel
        return self._channel

    # ---- Publisher ----------------------------------------------------------------------------------------
    def _publish(self, body: bytes, count: int, seq: int) -> None:
        channel = self._open()
        props = pika.BasicProperties(delivery_mode=2, content_type="application/json", reply_to=self._stored_queue,
                                     headers={"p": self.producer_id, "s": seq, "n": count, "e": "json"})
        with self._unstored_lock:
            self._in_flight, self._stored_in_flight = seq, False
        try:
            with amqp_errors("publishing a batch"):
                # Blocks until the broker confirms (the quorum queues have it); mandatory: refused if unroutable.
                channel.basic_publish(self.mq.channel, "", body, props, mandatory=True)
        except BaseException:
            with self._unstored_lock:
                self._in_flight = None
            raise
        with self._unstored_lock:
            # A keeper may store the batch, and confirm() on another thread read its note, before the broker's
            # confirm reached us: then it is stored already.
            if not self._stored_in_flight:
                self._unstored[seq] = count
            self._in_flight = None
        now = time.monotonic()
        if now - self._last_drain >= _DRAIN_EVERY_SECS:
            self._last_drain = now
            try:
                self._drain(channel)
            except TransportError as exc:
                logger.debug("flowcept: could not read the keepers' stored notes: %r", exc)

    def _ping(self) -> None:
        channel = self._open()
        with amqp_errors("checking the connection"):
            channel.connection.process_data_events(0)

    def _disconnect(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        close_quietly(connection)

    def _where(self) -> str:
        return where(self.mq)

    # ---- stored notes -------------------------------------------------------------------------------------
    def _drain(self, channel) -> None:
        """Read every "stored" note waiting for this producer, forgetting the batches they name."""
        with amqp_errors("reading stored notes"):
            while True:
                method, _, body = channel.basic_get(self._stored_queue, auto_ack=True)
                if method is None:
                    return
                self._forget(body)

    def _forget(self, body: bytes) -> None:
        try:
            seqs = orjson.loads(body)
        except orjson.JSONDecodeError:
            return
        with self._unstored_lock:
            for seq in seqs if isinstance(seqs, list) else ():
                if self._unstored.pop(seq, None) is None and seq == self._in_flight:
                    self._stored_in_flight = True

    def _unstored_up_to(self, last: int) -> int:
        with self._unstored_lock:
            return sum(n for seq, n in self._unstored.items() if seq <= last)

    # ---- Transport ----------------------------------------------------------------------------------------
    def begin_workflow(self, workflow_id: str) -> None:
        """Nothing to note: confirm() waits for this producer's own batches, whichever workflow they hold."""

    def confirm(self, workflow_id: str, deadline: float, wait_stored: bool = False) -> Confirmation:
        """Replay spilled records (until ``deadline``); with ``wait_stored``, wait until the keepers said they stored
        every batch this process published so far."""
        if not self.flush(max(0.0, deadline - time.monotonic())):
            return Confirmation(False, self.unconfirmed(), self.spill.path)
        if not wait_stored:
            return CONFIRMED
        last = self._seq
        connection = None
        try:
            # Our own connection: the flusher's belongs to the flusher thread (pika connections are not shared).
            connection = connect(self.mq)
            with amqp_errors("reading stored notes"):
                channel = connection.channel()
                channel.basic_consume(self._stored_queue, lambda ch, m, p, body: self._forget(body), auto_ack=True)
                while self._unstored_up_to(last):
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return Confirmation(False, self.unconfirmed(), None)
                    connection.process_data_events(time_limit=min(0.05, left))
        except TransportError as exc:  # broker away: what is not confirmed is reported
            logger.warning("flowcept: stop() could not read the keepers' progress: %s", exc)
            return Confirmation(False, self.unconfirmed(), None)
        finally:
            close_quietly(connection)
        return CONFIRMED

    def close(self) -> None:
        if self._closed:
            return
        self._check_fork()
        if self._channel is not None and self._channel.is_open:
            try:  # nobody will read this producer's stored notes any more
                with amqp_errors("deleting the stored-notes queue"):
                    self._channel.queue_delete(self._stored_queue)
            except TransportError as exc:
                logger.debug("flowcept: %s", exc)
        super().close()

    def unconfirmed(self) -> int:
        """Records this process published that no keeper said it stored yet, plus those spilled."""
        return self._unstored_up_to(self._seq) + self.spilled
