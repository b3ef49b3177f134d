"""The one consumer-group reader of the record stream, shared by the keeper and ``BaseConsumer``.

::

    XREADGROUP <group> <me> "0"   entries delivered to this consumer name before a reconnect, never acknowledged
    XAUTOCLAIM (entries another consumer left unacknowledged past claim_idle_secs)
    XREADGROUP <group> <me> ">"   new entries
        ──▶ [Delivery] ──▶ caller commits ──▶ ack: XACK

Each group gets every entry; consumers of one group share them, each entry going to one of them. A group that is
gone (Redis restarted without persistence) is created again.
"""

from __future__ import annotations

import logging
import time

from flowcept.errors import BrokerUnreachableError
from flowcept.transport import Delivery
from flowcept.transport._publisher import new_producer_id
from flowcept.transport.redis._client import close_quietly, connect, group_name
from flowcept.transport.redis._errors import is_existing_group, is_missing_group, redis_errors

logger = logging.getLogger("flowcept")


class StreamReader:
    """Reads batches of the stream ``mq.channel`` through a consumer group (see :class:`flowcept.transport.Reader`).

    Args:
        settings: flowcept settings.
        group: the consumer group; default the keepers' (``mq.group_id`` or ``flowcept_keeper``).
        consumer: this consumer's name; default ``host:pid:random``.
        start_from: where a new group starts: ``"0"`` (the whole stream) or ``"$"`` (new entries only).
        claim_idle_secs: claim entries other consumers left unacknowledged this long.
        prefetch: entries per read.
    """

    def __init__(self, settings, group: str | None = None, consumer: str | None = None, start_from: str = "0",
                 claim_idle_secs: float = 30.0, prefetch: int = 8):
        self.mq = settings.mq
        self.stream = self.mq.channel
        self.group = group or group_name(self.mq)
        self.consumer = consumer or new_producer_id()
        self.start_from = start_from
        self.claim_idle_ms = int(claim_idle_secs * 1000)
        self.prefetch = int(prefetch)
        self.claimed = 0
        self._client = None
        self._own_pending = True
        self._next_claim = 0.0
        self._claim_cursor: bytes | str | None = None

    def connect(self) -> None:
        """Connect and create the group now (batches published from now on are kept for it)."""
        try:
            with redis_errors("creating the consumer group"):
                self._connect()
        except BrokerUnreachableError:
            self._drop()
            raise

    def describe(self) -> str:
        return f"stream {self.stream!r} as group {self.group!r}"

    def read(self, block_secs: float) -> list[Delivery]:
        """Up to ``prefetch`` entries: this consumer's own unacknowledged ones first, then claimed ones, then new
        ones (waiting up to ``block_secs``).

        Raises:
            BrokerUnreachableError: Redis does not answer (the next call reconnects).
            TransportError: Redis refused.
        """
        try:
            with redis_errors("reading the stream"):
                return self._read(block_secs)
        except BrokerUnreachableError:
            self._drop()
            raise

    def _read(self, block_secs: float) -> list[Delivery]:
        client = self._connect()
        if self._own_pending:
            entries = self._xreadgroup(client, "0", None)
            if entries:
                return self._deliveries(entries, redelivered=True)
            self._own_pending = False
        now = time.monotonic()
        if self._claim_cursor is not None or now >= self._next_claim:
            cursor, entries = client.xautoclaim(self.stream, self.group, self.consumer, self.claim_idle_ms,
                                                self._claim_cursor or "0-0", count=self.prefetch)[:2]
            self._claim_cursor = None if cursor in (b"0-0", "0-0") else cursor
            if self._claim_cursor is None:
                self._next_claim = now + max(0.5, self.claim_idle_ms / 2000)
            entries = [e for e in entries if e[1]]
            if entries:
                self.claimed += len(entries)
                logger.info("flowcept: %s claimed %d entries of a consumer that stopped answering", self.consumer,
                            len(entries))
                return self._deliveries(entries, redelivered=True)
        return self._deliveries(self._xreadgroup(client, ">", int(block_secs * 1000)), redelivered=False)

    def _xreadgroup(self, client, start: str, block: int | None) -> list:
        from redis.exceptions import ResponseError

        try:
            resp = client.xreadgroup(self.group, self.consumer, {self.stream: start}, count=self.prefetch,
                                     block=block)
        except ResponseError as exc:
            if not is_missing_group(exc):
                raise
            self._ensure_group(client)  # the stream or group is gone (e.g. Redis restarted without persistence)
            return []
        return resp[0][1] if resp else []

    @staticmethod
    def _deliveries(entries: list, redelivered: bool) -> list[Delivery]:
        out = []
        for entry_id, fields in entries:
            fields = fields or {}
            enc = fields.get(b"e", b"json")
            out.append(Delivery(tag=entry_id, body=fields.get(b"b"), count=int(fields.get(b"n", 0) or 0),
                                encoding=enc.decode() if isinstance(enc, bytes) else str(enc),
                                redelivered=redelivered))
        return out

    def ack(self, deliveries) -> None:
        """Acknowledge committed entries (XACK).

        Raises:
            BrokerUnreachableError: Redis does not answer (the entries stay pending and are read again).
        """
        if not deliveries:
            return
        try:
            with redis_errors("XACK"):
                self._connect().xack(self.stream, self.group, *[d.tag for d in deliveries])
        except BrokerUnreachableError:
            self._drop()
            raise

    def _connect(self):
        if self._client is None:
            client = connect(self.mq)
            self._ensure_group(client)
            self._client = client
            self._own_pending = True
        return self._client

    def _ensure_group(self, client) -> None:
        from redis.exceptions import ResponseError

        try:
            # Id 0 for keepers: one started after the producers still gets every entry already in the stream.
            client.xgroup_create(self.stream, self.group, id=self.start_from, mkstream=True)
        except ResponseError as exc:
            if not is_existing_group(exc):
                raise

    def _drop(self) -> None:
        client, self._client = self._client, None
        close_quietly(client)

    def close(self) -> None:
        self._drop()
