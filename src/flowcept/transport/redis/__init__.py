"""The ``redis`` transport (Redis Streams): one module per job.

::

    _errors.py   the one Redis error map (redis-py errors -> TransportError / BrokerUnreachableError)
    _client.py   connections, and the keepers' progress read from stream positions and the producers' registry
    producer.py  RedisStreamTransport: XADD per batch (retry, spill, replay: flowcept.transport._publisher)
    retained.py  copies of unacknowledged batches, resent after a Redis restart that lost them
    reader.py    StreamReader: the consumer-group reader shared by the keeper and BaseConsumer

redis-py is imported only inside this package; its errors never escape it untranslated.
"""

from flowcept.transport._spill import spill_file_path
from flowcept.transport.redis._client import (DEFAULT_GROUP, acked_below, backlog, connect, group_name,
                                              is_committed, parse_id, producers_key, workflow_flushed)
from flowcept.transport.redis._errors import redis_errors
from flowcept.transport.redis.producer import RedisStreamTransport
from flowcept.transport.redis.reader import StreamReader

__all__ = ["DEFAULT_GROUP", "RedisStreamTransport", "StreamReader", "acked_below", "backlog", "connect",
           "group_name", "is_committed", "parse_id", "producers_key", "redis_errors", "spill_file_path",
           "workflow_flushed"]
