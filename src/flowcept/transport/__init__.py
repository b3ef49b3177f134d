"""Transports: how batches leave the producer process, and how keepers read them back.

::

    producer process                                                    keeper process (or thread)
    BatchBuffer flusher ──write(batch)──▶ Transport ──▶ embedded: the Store, in this process
                                                   ├─▶ redis:    a Redis Stream   ──▶ Reader ──▶ Keeper ──▶ Store
                                                   └─▶ rabbitmq: a quorum queue   ──▶ Reader ──▶ Keeper ──▶ Store
    Flowcept.start() ──begin_workflow(id)──▶ Transport
    Flowcept.stop()  ──hurry(deadline); buffer.flush(); confirm(id, deadline)──▶ Confirmation

Producer side, :class:`Transport` (a :class:`flowcept.buffer.Sink` with the stop protocol):

* ``write(batch)`` runs on the flusher thread only, may block (a lost broker is retried, then the batch is
  spilled to this process's spill file) and returns how many records it could not keep.
* ``flush(timeout)`` (flusher thread, after a flush marker) returns True once everything written is in the broker.
* ``begin_workflow(workflow_id)`` and ``confirm(workflow_id, deadline, wait_stored)`` run on the controller's
  thread; ``confirm`` never blocks past ``deadline`` (a ``time.monotonic()`` value) and reports, as a
  :class:`Confirmation`, whether everything this process sent is in the broker (and, with ``wait_stored``, committed
  by the keepers) and, if not, how many records are unconfirmed and where the spilled ones are.
* ``hurry(deadline)``: ``stop()`` is waiting; spill instead of retrying a lost broker past ``deadline``.
* ``close()`` is idempotent.

Keeper side, :class:`Reader` (one per keeper or custom consumer, used on one thread at a time): ``connect()``
creates the group's queue now (it keeps what is published from then on), ``read(block_secs)``
returns deliveries (each one flushed batch), claiming the work of dead keepers; ``ack(deliveries)`` after the
store committed them. A lost broker is a :class:`flowcept.errors.BrokerUnreachableError` from either; the caller
waits and calls again (the reader reconnects).

Adding a transport = one module (or package) + one line in :data:`TRANSPORTS` and :data:`READERS` + the transport
contract tests (``tests/transport``) pass against it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, Sequence, runtime_checkable

from flowcept._registry import load_backend

if TYPE_CHECKING:
    from flowcept.buffer import EncodedBatch

__all__ = ["CONFIRMED", "Confirmation", "Delivery", "Reader", "Transport", "READERS", "TRANSPORTS", "keepers_group",
           "make_reader", "make_transport"]

TRANSPORTS = {
    "embedded": "flowcept.transport.embedded:EmbeddedTransport",
    "redis": "flowcept.transport.redis:RedisStreamTransport",
    "rabbitmq": "flowcept.transport.rabbitmq:RabbitMQTransport",
}

READERS = {
    "redis": "flowcept.transport.redis:StreamReader",
    "rabbitmq": "flowcept.transport.rabbitmq:QueueReader",
}


@dataclass(frozen=True)
class Confirmation:
    """What :meth:`Transport.confirm` established.

    Attributes:
        confirmed: everything this process sent is in the broker (and stored, when the caller asked to wait).
        unconfirmed: records not confirmed yet (0 when ``confirmed``), spilled ones included.
        spill_path: this process's spill file when records wait there, else None.
    """

    confirmed: bool
    unconfirmed: int = 0
    spill_path: str | None = None


CONFIRMED = Confirmation(True)


@runtime_checkable
class Transport(Protocol):
    """The producer side of a transport (see the module docstring for threads and blocking)."""

    name: str
    primary: bool

    def write(self, batch: "EncodedBatch") -> int: ...

    def flush(self, timeout: float | None = None) -> bool: ...

    def begin_workflow(self, workflow_id: str) -> None: ...

    def hurry(self, deadline: float | None) -> None: ...

    def confirm(self, workflow_id: str, deadline: float, wait_stored: bool = False) -> Confirmation: ...

    def close(self) -> None: ...


@dataclass
class Delivery:
    """One flushed batch as a reader hands it over.

    Attributes:
        tag: the reader's handle to acknowledge it (a stream entry id, a delivery tag).
        body: the batch as one JSON array (``encoding`` ``json``) or msgpack bytes; None for an empty entry.
        count: records in it, as the producer said.
        encoding: ``json`` or ``msgpack``.
        redelivered: it was delivered before to a keeper that did not acknowledge it (claimed, requeued).
        reply: where the producer wants to hear that it is stored (transport-specific, may be None).
    """

    tag: object
    body: bytes | None
    count: int = 0
    encoding: str = "json"
    redelivered: bool = False
    reply: object = None


class Reader(Protocol):
    """The consumer side of a transport: one group of consumers shares the batches, each going to one of them.

    Args (of the constructor every reader takes):
        settings: flowcept settings (the ``mq`` section).
        group: the consumer group (the keepers' default, or a custom consumer's own).
        consumer: this consumer's name in the group.
        start_from: for a new group, ``"0"`` (everything kept) or ``"$"`` (from now on).
        claim_idle_secs: take over batches another consumer left unacknowledged this long (where the broker
            does not redeliver them by itself).
        prefetch: batches read at most per call.
    """

    claimed: int
    consumer: str

    def connect(self) -> None: ...

    def read(self, block_secs: float) -> Sequence[Delivery]: ...

    def ack(self, deliveries: Sequence[Delivery]) -> None: ...

    def describe(self) -> str: ...

    def close(self) -> None: ...


def make_transport(settings) -> "Transport | None":
    """The transport the settings ask for: ``mq.type`` when ``mq.enabled``, else embedded (None without a store)."""
    if settings.mq.enabled:
        return load_backend(TRANSPORTS, settings.mq.type, "mq.type").from_settings(settings)
    return load_backend(TRANSPORTS, "embedded", "transport").from_settings(settings)


def make_reader(settings, group: str | None = None, consumer: str | None = None, start_from: str = "0",
                claim_idle_secs: float = 30.0, prefetch: int = 8) -> Reader:
    """A reader of ``mq.type``'s batches for ``group`` (default: the keepers' group, ``mq.group_id``).

    Raises:
        ConfigError: ``mq.type`` names no transport that keepers can read.
        BackendUnavailableError: the transport's library is not installed.
    """
    cls = load_backend(READERS, settings.mq.type, "mq.type")
    return cls(settings, group=group, consumer=consumer, start_from=start_from, claim_idle_secs=claim_idle_secs,
               prefetch=prefetch)


def keepers_group(mq) -> str:
    """The keepers' consumer group: ``mq.group_id`` when set (and not ``auto``), else ``flowcept_keeper``."""
    gid = getattr(mq, "group_id", None)
    return gid if gid and gid != "auto" else "flowcept_keeper"
