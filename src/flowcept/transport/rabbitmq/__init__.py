"""The ``rabbitmq`` transport (``mq.type: rabbitmq``, ``pip install 'flowcept[rabbitmq]'``): one module per job.

::

    _amqp.py     connections, the queue layout, and the one pika error map
    producer.py  RabbitMQTransport: a confirmed persistent publish per batch (retry, spill, replay:
                 flowcept.transport._publisher); confirm() waits for the keepers' "stored" notes
    reader.py    QueueReader: a consumer group's quorum queue, shared by the keeper and BaseConsumer

Why a quorum queue (not a stream): keepers are competing consumers that acknowledge each batch after their store
commits, and a batch a dead keeper never acknowledged must go to another one. A quorum queue does exactly that
(per-message acks, redelivery when a consumer's connection ends, durable and replicated, publisher confirms once
stored); a RabbitMQ stream is a log that each consumer reads at its own offset, so sharing the work between keepers
and redelivering a dead keeper's batches would have to be built on top of it.

pika is imported only inside this package; its errors never escape it untranslated.
"""

from flowcept.transport.rabbitmq._amqp import amqp_errors, connect, group_queue
from flowcept.transport.rabbitmq.producer import RabbitMQTransport
from flowcept.transport.rabbitmq.reader import QueueReader

__all__ = ["QueueReader", "RabbitMQTransport", "amqp_errors", "connect", "group_queue"]
