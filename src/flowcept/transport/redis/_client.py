"""Redis connections and the keepers' progress, read from stream positions: what is acknowledged, what is flushed.

Per workflow, producers note themselves in the hash ``<channel>:producers:<workflow_id>`` (``running`` at start,
``flushed <last entry id>`` at stop), so a producer can tell when every producer of a workflow is stored
(:func:`workflow_flushed`).
"""

from __future__ import annotations

from flowcept.errors import BackendUnavailableError, TransportError
from flowcept.transport import keepers_group

try:
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry
except ImportError as _exc:  # pragma: no cover - exercised without the extra
    raise BackendUnavailableError("the redis transport (mq.type: redis)", "redis") from _exc

from flowcept.transport.redis._errors import redis_errors

DEFAULT_GROUP = "flowcept_keeper"
PRODUCERS_TTL_SECS = 7 * 24 * 3600

group_name = keepers_group


def connect(mq) -> "redis.Redis":
    """A Redis client for the ``mq`` settings (``uri`` wins over host/port/password; ``rediss://`` is TLS)."""
    # No retries inside redis-py (its default retries a refused connection for seconds): our callers retry with
    # their own deadlines, and the flusher must learn at once that the broker is away.
    opts = dict(socket_connect_timeout=2.0, socket_timeout=30.0, socket_keepalive=True, health_check_interval=30,
                retry=Retry(NoBackoff(), 0))
    if mq.uri:
        return redis.Redis.from_url(mq.uri, **opts)
    return redis.Redis(host=mq.host, port=mq.port, password=mq.password, **opts)


def close_quietly(client) -> None:
    """Close a client that is being dropped (errors ignored: the connection may be gone already)."""
    if client is not None:
        try:
            client.close()
        except Exception:  # noqa: BLE001 - the connection is being dropped anyway
            pass


def producers_key(stream: str, workflow_id: str) -> str:
    return f"{stream}:producers:{workflow_id}"


def parse_id(entry_id) -> tuple[int, int]:
    """A stream entry id (``b"1700000000000-3"``) as a comparable tuple."""
    if isinstance(entry_id, bytes):
        entry_id = entry_id.decode()
    ms, _, seq = str(entry_id).partition("-")
    return int(ms), int(seq or 0)


def acked_below(client, stream: str, group: str) -> tuple[int, int] | None:
    """The stream position below which every entry is acknowledged by ``group`` (None: no such group yet).

    Entries are acknowledged only after the store committed them, so everything below is stored.

    Raises:
        TransportError: Redis failed (BrokerUnreachableError when it does not answer).
    """
    with redis_errors("reading the keepers' progress"):
        try:
            groups = client.xinfo_groups(stream)
        except redis.exceptions.ResponseError:  # no such stream
            return None
        for g in groups:
            name = g.get("name")
            if (name.decode() if isinstance(name, bytes) else name) == group:
                last = parse_id(g.get("last-delivered-id") or "0-0")
                boundary = (last[0], last[1] + 1)
                if g.get("pending"):
                    low = client.xpending(stream, group).get("min")
                    if low is not None:
                        boundary = min(boundary, parse_id(low))
                return boundary
    return None


def backlog(client, stream: str, group: str) -> int:
    """Entries of ``stream`` that ``group`` has not acknowledged (pending plus never delivered)."""
    with redis_errors("reading the group's backlog"):
        for g in client.xinfo_groups(stream):
            name = g.get("name")
            if (name.decode() if isinstance(name, bytes) else name) == group:
                return int(g.get("pending") or 0) + int(g.get("lag") or 0)
    return int(client.xlen(stream))


def is_committed(client, stream: str, group: str, entry_id) -> bool:
    """Whether the entry ``entry_id`` (and every earlier one) is acknowledged by ``group``."""
    boundary = acked_below(client, stream, group)
    return boundary is not None and parse_id(entry_id) < boundary


def workflow_flushed(client, stream: str, group: str, workflow_id: str) -> tuple[bool, list[str]]:
    """Whether every producer registered for ``workflow_id`` has flushed and its entries are stored.

    Returns:
        ``(done, waiting)``: ``waiting`` names the producers still running or not yet stored.

    Raises:
        TransportError: Redis failed.
    """
    with redis_errors("reading the producers of a workflow"):
        entries = client.hgetall(producers_key(stream, workflow_id))
    waiting, last = [], None
    for producer, state in entries.items():
        state = state.decode()
        producer = producer.decode()
        if not state.startswith("flushed"):
            waiting.append(producer)
            continue
        _, _, entry_id = state.partition(" ")
        if entry_id and (last is None or parse_id(entry_id) > parse_id(last)):
            last = entry_id
    if waiting:
        return False, waiting
    if last is not None and not is_committed(client, stream, group, last):
        return False, ["(entries not yet stored)"]
    return True, []


def mark_producer(client, stream: str, workflow_id: str, producer_id: str, state: str) -> None:
    """Note ``producer_id``'s ``state`` for ``workflow_id`` (kept a week).

    Raises:
        TransportError: Redis failed.
    """
    key = producers_key(stream, workflow_id)
    with redis_errors(f"noting producer state {state!r}"):
        pipe = client.pipeline(transaction=False)
        pipe.hset(key, producer_id, state)
        pipe.expire(key, PRODUCERS_TTL_SECS)
        pipe.execute()


__all__ = ["DEFAULT_GROUP", "TransportError", "acked_below", "backlog", "connect", "group_name", "is_committed",
           "mark_producer", "parse_id", "producers_key", "workflow_flushed"]
