"""Compatibility path: the redis transport lives in :mod:`flowcept.transport.redis`."""

from flowcept.transport.redis import (DEFAULT_GROUP, RedisStreamTransport, StreamReader, acked_below, connect,
                                      group_name, is_committed, parse_id, producers_key, redis_errors,
                                      spill_file_path, workflow_flushed)
from flowcept.transport.redis.retained import RETAIN_MAX_BYTES

__all__ = ["DEFAULT_GROUP", "RETAIN_MAX_BYTES", "RedisStreamTransport", "StreamReader", "acked_below", "connect",
           "group_name", "is_committed", "parse_id", "producers_key", "redis_errors", "spill_file_path",
           "workflow_flushed"]
