"""The consumer side of the ``rabbitmq`` transport: a consumer group is one quorum queue its members share.

::

    basic_consume(<channel>.<group>, manual acks, prefetch) ──▶ [Delivery] ──▶ caller commits
        ──▶ ack: basic_ack, then one "stored" note per producer (the seqs of its batches) to its reply_to queue

A keeper that dies (or loses its connection) leaves its unacknowledged batches to the broker, which delivers them
again to another keeper (``redelivered``); records merge by id, so writing twice is harmless.
"""

from __future__ import annotations

import logging
from collections import deque

import orjson

from flowcept.errors import BrokerUnreachableError
from flowcept.transport import Delivery
from flowcept.transport._publisher import new_producer_id
from flowcept.transport.rabbitmq._amqp import (amqp_errors, close_quietly, connect, declare_group, group_queue,
                                               queue_length)

logger = logging.getLogger("flowcept")


class QueueReader:
    """Reads batches from a consumer group's quorum queue (see :class:`flowcept.transport.Reader`).

    Takes the arguments of every :class:`flowcept.transport.Reader`. ``start_from`` has no effect: a group's queue
    keeps what is published once it exists (producers declare the keepers' queue, so it exists before the first
    batch). ``claim_idle_secs`` neither: the broker itself delivers a lost consumer's batches again.
    """

    def __init__(self, settings, group: str | None = None, consumer: str | None = None, start_from: str = "0",
                 claim_idle_secs: float = 30.0, prefetch: int = 8):
        self.mq = settings.mq
        self.group = group
        self.queue = group_queue(self.mq, group)
        self.consumer = consumer or new_producer_id()
        self.prefetch = max(1, int(prefetch))
        self.claimed = 0
        self._connection = None
        self._channel = None
        self._generation = 0  # bumped per connection: delivery tags of an older one must not be acknowledged
        self._ready: deque = deque()

    def describe(self) -> str:
        return f"RabbitMQ queue {self.queue!r}"

    def connect(self) -> None:
        """Connect, declare the group's queue and start consuming."""
        try:
            self._open()
        except BrokerUnreachableError:
            self._drop()
            raise

    def _open(self):
        if self._channel is not None and self._channel.is_open:
            return self._channel
        self._drop()
        connection = connect(self.mq)
        try:
            with amqp_errors("declaring the queue"):
                channel = connection.channel()
                declare_group(channel, self.mq, self.group)
                channel.basic_qos(prefetch_count=self.prefetch)
                channel.basic_consume(self.queue, self._on_message, auto_ack=False, consumer_tag=self.consumer)
        except BaseException:
            close_quietly(connection)
            raise
        self._generation += 1
        self._connection, self._channel = connection, channel
        return channel

    def _on_message(self, channel, method, props, body) -> None:
        headers = props.headers or {}
        self._ready.append(Delivery(tag=(self._generation, method.delivery_tag), body=body,
                                    count=int(headers.get("n") or 0), encoding=str(headers.get("e") or "json"),
                                    redelivered=bool(method.redelivered),
                                    reply=(props.reply_to, headers.get("s"))))

    def read(self, block_secs: float) -> list[Delivery]:
        """Up to ``prefetch`` batches, waiting up to ``block_secs`` for the first.

        Raises:
            BrokerUnreachableError: RabbitMQ does not answer (the next call reconnects).
            TransportError: RabbitMQ refused (e.g. the queue exists with other arguments).
        """
        try:
            self._open()
            with amqp_errors("reading the queue"):
                if not self._ready:
                    self._connection.process_data_events(time_limit=block_secs)
                else:
                    self._connection.process_data_events(time_limit=0)
        except BrokerUnreachableError:
            self._drop()
            raise
        out = [self._ready.popleft() for _ in range(min(self.prefetch, len(self._ready)))]
        redelivered = sum(d.redelivered for d in out)
        if redelivered:
            self.claimed += redelivered
            logger.info("flowcept: %s got %d batch(es) again that a consumer left unacknowledged", self.consumer,
                        redelivered)
        return out

    def ack(self, deliveries) -> None:
        """Acknowledge committed batches, then tell each producer which of its batches are stored.

        Raises:
            BrokerUnreachableError: RabbitMQ does not answer (the broker delivers the batches again).
        """
        current = [d for d in deliveries if d.tag[0] == self._generation]
        if not current:
            return
        notes: dict[str, list] = {}
        for d in current:
            reply_to, seq = d.reply or (None, None)
            if reply_to and seq is not None:
                notes.setdefault(reply_to, []).append(seq)
        try:
            with amqp_errors("acknowledging batches"):
                channel = self._channel
                for d in current:
                    channel.basic_ack(d.tag[1])
                for reply_to, seqs in notes.items():
                    # Best effort: a producer that is gone has no queue left; the note is dropped by the broker.
                    channel.basic_publish("", reply_to, orjson.dumps(seqs))
        except BrokerUnreachableError:
            self._drop()
            raise

    def backlog(self) -> int:
        """Batches waiting in the group's queue, not delivered to any consumer (with none connected: every batch not
        acknowledged)."""
        return queue_length(self.mq, self.queue)

    def _drop(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        self._ready.clear()  # never acknowledged: the broker delivers them again
        close_quietly(connection)

    def close(self) -> None:
        self._drop()
