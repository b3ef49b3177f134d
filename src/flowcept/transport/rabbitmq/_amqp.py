"""RabbitMQ connections, the queue layout, and the one pika error map.

::

    producers ──basic_publish (confirmed)──▶ exchange <mq.channel> (fanout, durable)
                                               ├─▶ <channel>.<keepers' group>   quorum queue: the keepers share it
                                               └─▶ <channel>.<consumer group>   quorum queue per BaseConsumer group
    keepers ──after commit──▶ default exchange ──▶ <channel>.stored.<producer id>   (which batches are stored)

Producers declare the exchange, the keepers' queue and its binding themselves, so batches published before any keeper
started are kept.
"""

from __future__ import annotations

from flowcept.errors import BackendUnavailableError
from flowcept.transport._errors import make_error_map
from flowcept.transport import keepers_group

try:
    import pika
    from pika import exceptions as pika_exc
except ImportError as _exc:  # pragma: no cover - exercised without the extra
    raise BackendUnavailableError("the rabbitmq transport (mq.type: rabbitmq)", "rabbitmq") from _exc

#: Redelivery limit of the quorum queues: in effect none (RabbitMQ 4 drops a message after 20 by default); a batch
#: the store refuses is set aside by the keeper instead.
_DELIVERY_LIMIT = 1_000_000
#: A custom consumer's queue is deleted after a day without that consumer (it stops piling up records).
_CONSUMER_QUEUE_EXPIRES_MS = 24 * 3600 * 1000
#: A producer's "stored" queue is deleted after an hour without that producer.
_STORED_QUEUE_EXPIRES_MS = 3600 * 1000
_REDIS_DEFAULT_PORT = 6379

# Failures that mean "the broker is away": retried, then spilled.
LOST = (pika_exc.AMQPConnectionError, pika_exc.ChannelWrongStateError, ConnectionError, OSError)


#: ``with amqp_errors(action):`` translates pika errors raised by ``action`` (a closed channel, a nacked or unroutable
#: publish: TransportError; a lost or refused connection: BrokerUnreachableError).
amqp_errors = make_error_map("RabbitMQ", LOST, pika_exc.AMQPError)


def parameters(mq) -> "pika.connection.Parameters":
    """Connection parameters for the ``mq`` settings (``uri`` wins over host/port/username/password/vhost)."""
    if mq.uri:
        params = pika.URLParameters(mq.uri)
    else:
        port = 5672 if mq.port == _REDIS_DEFAULT_PORT else mq.port
        params = pika.ConnectionParameters(
            host=mq.host, port=port, virtual_host=mq.vhost or "/",
            credentials=pika.PlainCredentials(mq.username or "guest", mq.password or "guest"))
    # Fail fast: our callers retry with their own deadlines.
    params.connection_attempts = 1
    params.socket_timeout = 2.0
    params.blocked_connection_timeout = 30.0
    params.heartbeat = 30
    return params


def connect(mq) -> "pika.BlockingConnection":
    with amqp_errors("connecting"):
        return pika.BlockingConnection(parameters(mq))


def group_queue(mq, group: str | None = None) -> str:
    """The queue of a consumer group: ``<channel>.<group>`` (the keepers' group by default)."""
    return f"{mq.channel}.{group or keepers_group(mq)}"


def stored_queue(mq, producer_id: str) -> str:
    """Where keepers tell a producer which of its batches are stored."""
    return f"{mq.channel}.stored.{producer_id}"


def declare_group(channel, mq, group: str | None = None) -> str:
    """Declare the exchange and ``group``'s quorum queue bound to it (idempotent); returns the queue name."""
    queue = group_queue(mq, group)
    arguments = {"x-queue-type": "quorum", "x-delivery-limit": _DELIVERY_LIMIT}
    if group is not None and group != keepers_group(mq):
        arguments["x-expires"] = _CONSUMER_QUEUE_EXPIRES_MS
    channel.exchange_declare(mq.channel, exchange_type="fanout", durable=True)
    channel.queue_declare(queue, durable=True, arguments=arguments)
    channel.queue_bind(queue, mq.channel)
    return queue


def declare_stored(channel, mq, producer_id: str) -> str:
    """Declare a producer's "stored" queue (durable, deleted after an hour unused); returns its name."""
    queue = stored_queue(mq, producer_id)
    channel.queue_declare(queue, durable=True, arguments={"x-expires": _STORED_QUEUE_EXPIRES_MS})
    return queue


def queue_length(mq, queue: str) -> int:
    """Messages waiting in ``queue``, not delivered to any consumer; asked on a connection of its own, which
    consumes nothing.

    Raises:
        TransportError: RabbitMQ failed, or there is no such queue.
    """
    connection = connect(mq)
    try:
        with amqp_errors("reading the queue length"):
            return connection.channel().queue_declare(queue, passive=True).method.message_count
    finally:
        close_quietly(connection)


def server_version(mq) -> str:
    """The RabbitMQ server's version (it proves the broker answers and accepts the credentials)."""
    connection = connect(mq)
    try:
        version = connection._impl.server_properties.get("version", b"?")
        return version.decode() if isinstance(version, bytes) else str(version)
    finally:
        close_quietly(connection)


def where(mq) -> str:
    if mq.uri:
        from flowcept.settings import _redact_uri

        return _redact_uri(mq.uri)
    return f"{mq.host}:{5672 if mq.port == _REDIS_DEFAULT_PORT else mq.port}"


def close_quietly(connection) -> None:
    if connection is not None:
        try:
            if connection.is_open:
                connection.close()
        except Exception:  # noqa: BLE001 - the connection is being dropped anyway
            pass
