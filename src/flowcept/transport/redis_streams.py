"""The ``redis`` transport: each flushed batch becomes one entry of a Redis Stream, read by keepers in a group.

::

    flusher ──write(batch)──▶ XADD <mq.channel> * b <JSON array> p <producer> s <seq> n <count> e json
               │  broker lost: retry with backoff while the buffer keeps queueing (capture runs on)
               │  still lost after mq.reconnect_deadline_secs: append the batch to this process's spill file
               │  (mq.spill_path + "_<host>_<pid>", JSONL) and carry on; once the broker answers again, the spill
               │  file is replayed into the stream and deleted
               ▼
    copies of sent batches (in memory up to RETAIN_MAX_BYTES, older ones in segment files), dropped once the
    keepers' group has acknowledged them (stream positions); resent when the server restarted without them
    (noticed by its run id)

Entry layout: ``b`` is the batch as one JSON array of records (the bytes the flusher already encoded, so the
producer pays no second encoding; ``e`` says ``json``; a keeper also accepts ``msgpack`` entries from other
producers), ``p`` the producer id (host:pid:random), ``s`` the producer's sequence number, ``n`` the record count.

Per workflow, producers note themselves in the hash ``<channel>:producers:<workflow_id>`` (``running`` at start,
``flushed <last entry id>`` at stop), so a keeper can tell when every producer of a workflow is stored
(:func:`workflow_flushed`).

redis-py is imported only here and in the keeper; its errors become :class:`flowcept.errors.TransportError`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections import deque
from typing import Iterator

from flowcept._files import open_private
from flowcept.errors import BackendUnavailableError, TransportError

try:
    import redis
    from redis import exceptions as redis_exc
    from redis.backoff import NoBackoff
    from redis.retry import Retry
except ImportError as _exc:  # pragma: no cover - exercised without the extra
    raise BackendUnavailableError("the redis transport (mq.type: redis)", "redis") from _exc

logger = logging.getLogger("flowcept")

DEFAULT_GROUP = "flowcept_keeper"
# Copies of sent batches are kept until the keepers acknowledge them, to resend after a Redis restart that lost
# them: the newest this many bytes in memory, older ones on disk (_RetainedOverflow).
RETAIN_MAX_BYTES = 64 * 1024 * 1024
PRODUCERS_TTL_SECS = 7 * 24 * 3600
_BACKOFF_MAX_SECS = 1.0
_RETRY_AFTER_DEADLINE_SECS = 1.0  # past the deadline, try the broker at most this often; spill meanwhile
_PRUNE_EVERY_SECS = 0.5

# Failures that mean "the broker is away": retried, then spilled.
_LOST = (redis_exc.ConnectionError, redis_exc.TimeoutError, redis_exc.BusyLoadingError)


@contextlib.contextmanager
def redis_errors(action: str) -> Iterator[None]:
    """Translate redis-py errors raised by ``action`` into :class:`TransportError`."""
    try:
        yield
    except redis_exc.RedisError as exc:
        raise TransportError(f"Redis: {action} failed: {exc}") from exc


def spill_file_path(base: str) -> str:
    """This process's spill file: ``base`` with ``_<host>_<pid>`` before the suffix (never shared by processes)."""
    root, ext = os.path.splitext(os.path.abspath(base))
    return f"{root}_{socket.gethostname()}_{os.getpid()}{ext or '.jsonl'}"


def connect(mq) -> "redis.Redis":
    """A Redis client for the ``mq`` settings (``uri`` wins over host/port/password; ``rediss://`` is TLS)."""
    # No retries inside redis-py (its default retries a refused connection for seconds): our callers retry with
    # their own deadlines, and the flusher must learn at once that the broker is away.
    opts = dict(socket_connect_timeout=2.0, socket_timeout=30.0, socket_keepalive=True, health_check_interval=30,
                retry=Retry(NoBackoff(), 0))
    if mq.uri:
        return redis.Redis.from_url(mq.uri, **opts)
    return redis.Redis(host=mq.host, port=mq.port, password=mq.password, **opts)


def group_name(mq) -> str:
    """The keepers' consumer group: ``mq.group_id`` when set (and not ``auto``), else ``flowcept_keeper``."""
    gid = getattr(mq, "group_id", None)
    return gid if gid and gid != "auto" else DEFAULT_GROUP


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
    """
    try:
        groups = client.xinfo_groups(stream)
    except redis_exc.ResponseError:  # no such stream
        return None
    for g in groups:
        name = g.get("name")
        if (name.decode() if isinstance(name, bytes) else name) == group:
            last = parse_id(g.get("last-delivered-id") or "0-0")
            boundary = (last[0], last[1] + 1)
            if g.get("pending"):
                summary = client.xpending(stream, group)
                low = summary.get("min")
                if low is not None:
                    boundary = min(boundary, parse_id(low))
            return boundary
    return None


def is_committed(client, stream: str, group: str, entry_id) -> bool:
    """Whether the entry ``entry_id`` (and every earlier one) is acknowledged by ``group``."""
    boundary = acked_below(client, stream, group)
    return boundary is not None and parse_id(entry_id) < boundary


def workflow_flushed(client, stream: str, group: str, workflow_id: str) -> tuple[bool, list[str]]:
    """Whether every producer registered for ``workflow_id`` has flushed and its entries are stored.

    Returns:
        ``(done, waiting)``: ``waiting`` names the producers still running or not yet stored.
    """
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


def new_producer_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{os.urandom(3).hex()}"


class _RetainedOverflow:
    """Copies of sent batches not yet acknowledged, past :data:`RETAIN_MAX_BYTES`, kept in segment files.

    While the keepers lag far behind, the oldest copies move from memory to disk instead of being dropped, so a
    Redis restart that lost the stream can still be repaired. A segment is deleted once the keepers acknowledged
    every entry in it. Lines are ``<count> <JSON array>``.
    """

    SEGMENT_BYTES = 64 * 1024 * 1024

    def __init__(self, base_path: str):
        self.base_path = base_path
        self.segments: deque = deque()  # [path, fd or None, max id tuple, bytes, records]
        self._serial = 0

    @property
    def records(self) -> int:
        return sum(seg[4] for seg in self.segments)

    def add(self, key: tuple, fields: dict) -> None:
        seg = self.segments[-1] if self.segments and self.segments[-1][1] is not None else None
        if seg is None:
            self._serial += 1
            path = f"{self.base_path}.retained.{self._serial}"
            seg = [path, open_private(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), key, 0, 0]
            self.segments.append(seg)
        line = str(int(fields["n"])).encode() + b" " + fields["b"] + b"\n"
        view = memoryview(line)
        while view:
            view = view[os.write(seg[1], view):]
        seg[2], seg[3], seg[4] = key, seg[3] + len(line), seg[4] + int(fields["n"])
        if seg[3] >= self.SEGMENT_BYTES:
            os.close(seg[1])
            seg[1] = None

    def prune(self, boundary: tuple) -> None:
        """Delete the segments whose every entry is below the keepers' acknowledged boundary."""
        while self.segments and self.segments[0][2] < boundary:
            self._remove(self.segments.popleft())

    def take(self) -> list:
        """Detach every segment, oldest first: the caller resends them, then discards them."""
        taken, self.segments = list(self.segments), deque()
        for seg in taken:
            if seg[1] is not None:
                os.close(seg[1])
                seg[1] = None
        return taken

    @staticmethod
    def batches(segment) -> Iterator[tuple[int, bytes]]:
        """The ``(count, JSON array)`` batches of one segment, in order."""
        with open(segment[0], "rb") as f:
            for line in f:
                count, _, body = line.rstrip(b"\n").partition(b" ")
                if body:
                    yield int(count), body

    def discard(self, segments) -> None:
        for seg in segments:
            self._remove(seg)

    def close(self) -> None:
        self.discard(self.take())

    @staticmethod
    def _remove(seg) -> None:
        if seg[1] is not None:
            with contextlib.suppress(OSError):
                os.close(seg[1])
        with contextlib.suppress(FileNotFoundError):
            os.remove(seg[0])


class RedisStreamTransport:
    """Sink that appends each batch to the Redis Stream ``mq.channel`` (at-least-once; see the module docstring).

    ``write`` runs on the flusher thread and blocks while the broker is away (up to ``reconnect_deadline_secs``
    per outage, then spills). ``flush`` returns True when every batch written so far is in Redis (False when some
    went to the spill file). Other methods may be called from any thread.

    Args:
        mq: the ``mq`` settings section.
    """

    name = "redis"
    primary = True

    def __init__(self, mq):
        self.mq = mq
        self.stream = mq.channel
        self.group = group_name(mq)
        self.spill_path = spill_file_path(mq.spill_path)
        self.reconnect_deadline_secs = float(mq.reconnect_deadline_secs)
        self.producer_id = new_producer_id()
        self.sent = 0  # records acknowledged by Redis
        self.spilled = 0  # records written to the spill file instead
        self.last_id: str | None = None  # id of this process's latest entry
        self._client = None
        self._pid = os.getpid()
        self._seq = 0
        self._down_since: float | None = None
        self._last_try = 0.0
        self._hurry_by: float | None = None
        self._retained: deque = deque()  # (id tuple, entry id, fields, size)
        self._retained_bytes = 0
        self._overflow = _RetainedOverflow(os.path.splitext(self.spill_path)[0])
        self._run_id: str | None = None  # the Redis server's run id, to notice restarts
        self._resending = False
        self._last_prune = 0.0
        self._check_loss = False
        self._spill_fd: int | None = None
        self._replay_offset = 0  # bytes of the spill file already sent on
        self._lock = threading.Lock()  # client (re)creation
        self._closed = False

    @classmethod
    def from_settings(cls, settings) -> "RedisStreamTransport":
        return cls(settings.mq)

    def __enter__(self) -> "RedisStreamTransport":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def client(self) -> "redis.Redis":
        self._check_fork()
        with self._lock:
            if self._client is None:
                self._client = connect(self.mq)
            return self._client

    def _check_fork(self) -> None:
        """In a forked child, start over as a producer of its own: the parent's sockets, copies, spill file and
        outage state are the parent's."""
        if self._pid == os.getpid():
            return
        with self._lock:
            if self._pid != os.getpid():
                self._pid = os.getpid()
                self._client = None
                self.producer_id = new_producer_id()
                self._seq, self.sent, self.spilled, self.last_id = 0, 0, 0, None
                self._retained.clear()
                self._retained_bytes = 0
                self._spill_fd = None
                self._replay_offset = 0
                self.spill_path = spill_file_path(self.mq.spill_path)
                self._overflow = _RetainedOverflow(os.path.splitext(self.spill_path)[0])
                self._down_since, self._hurry_by, self._check_loss, self._last_try = None, None, False, 0.0
                self._run_id = None

    # ---- flusher thread -----------------------------------------------------------------------------------
    def write(self, batch) -> int:
        self._check_fork()
        self._seq += 1
        fields = {"b": batch.array(), "p": self.producer_id, "s": self._seq, "n": len(batch), "e": "json"}
        self._send(fields, len(batch), batch)
        return 0

    def _send(self, fields: dict, count: int, batch=None) -> None:
        if self.spilled:
            # Records wait on disk (the broker was lost): new batches queue behind them, in order, and the spill
            # file is sent on as soon as the broker answers again.
            self._spill(fields, count, batch)
            if self._broker_back():
                self._replay_some()
            return
        delay = 0.05
        while True:
            now = time.monotonic()
            deadline_passed = self._down_since is not None and (
                now - self._down_since >= self.reconnect_deadline_secs
                or (self._hurry_by is not None and now >= self._hurry_by))
            if deadline_passed and now - self._last_try < _RETRY_AFTER_DEADLINE_SECS:
                self._spill(fields, count, batch)
                return
            self._last_try = now
            try:
                if self._check_loss:
                    self._resend_if_lost()
                entry_id = self.client.xadd(self.stream, fields)
            except _LOST as exc:
                if self._down_since is None:
                    self._down_since = now
                    logger.warning("flowcept: Redis at %s is unreachable (%s); retrying for %.0fs while records "
                                   "wait in the buffer", self._where(), exc, self.reconnect_deadline_secs)
                self._check_loss = True
                self._drop_client()
                if deadline_passed:
                    self._spill(fields, count, batch)
                    return
                time.sleep(delay)
                delay = min(delay * 2, _BACKOFF_MAX_SECS)
                continue
            except redis_exc.RedisError as exc:
                # Refused (out of memory, wrong type, ...): retrying will not help; keep the records on disk.
                logger.warning("flowcept: Redis refused a batch (%s)", exc)
                self._spill(fields, count, batch)
                return
            self._on_sent(entry_id, fields, count)
            if self._down_since is not None:
                logger.warning("flowcept: Redis at %s is reachable again", self._where())
                self._down_since = None
            return

    def _broker_back(self) -> bool:
        """Whether Redis answers (after an outage, asked at most every _RETRY_AFTER_DEADLINE_SECS)."""
        if self._down_since is None:
            return True
        now = time.monotonic()
        if now - self._last_try < _RETRY_AFTER_DEADLINE_SECS:
            return False
        self._last_try = now
        try:
            self.client.ping()
            if self._check_loss:
                self._resend_if_lost()
        except redis_exc.RedisError:
            self._drop_client()
            return False
        logger.warning("flowcept: Redis at %s is reachable again", self._where())
        self._down_since = None
        return True

    def _on_sent(self, entry_id, fields: dict, count: int, count_as_sent: bool = True) -> None:
        entry_id = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
        self.last_id = entry_id
        if count_as_sent:
            self.sent += count
        size = len(fields["b"])
        # Kept until the keepers acknowledge the entry, to resend after a Redis restart that lost data.
        self._retained.append((parse_id(entry_id), entry_id, fields, size))
        self._retained_bytes += size
        while self._retained_bytes > RETAIN_MAX_BYTES and len(self._retained) > 1:
            # The oldest copies move to disk (deleted once acknowledged), so memory stays bounded however far
            # the keepers lag, and a Redis restart that lost the stream can still be repaired.
            key, _, old_fields, old_size = self._retained.popleft()
            self._retained_bytes -= old_size
            try:
                self._overflow.add(key, old_fields)
            except OSError as exc:
                logger.warning("flowcept: cannot keep a copy of an unacknowledged batch on disk (%s)", exc)
        now = time.monotonic()
        if now - self._last_prune >= _PRUNE_EVERY_SECS:
            self._last_prune = now
            self._prune()

    def _prune(self) -> None:
        try:
            self._check_restart()
            boundary = acked_below(self.client, self.stream, self.group)
        except _LOST:
            return
        except redis_exc.RedisError:
            return
        if boundary is None:
            return
        retained = self._retained
        while retained and retained[0][0] < boundary:
            self._retained_bytes -= retained.popleft()[3]
        self._overflow.prune(boundary)

    def _check_restart(self) -> None:
        """A new server run id means Redis restarted; redis-py may have reconnected without an error, so this is
        where a restart that lost the stream is noticed (checked on each prune and each flush)."""
        if self._resending:
            return  # called back from a resend in progress (through _on_sent): nothing new to learn
        run_id = self.client.info("server").get("run_id")
        if self._run_id is not None and run_id != self._run_id:
            self._resending = True
            try:
                self._resend_if_lost()
            finally:
                self._resending = False
        self._run_id = run_id

    def _resend_if_lost(self) -> None:
        """After an outage: if our latest entry is gone, the server restarted empty; resend what is unconfirmed
        (the copies on disk first, oldest first, then those in memory)."""
        client = self.client
        # Acknowledged entries stay in the stream (nothing trims it), so a missing one means the stream was lost.
        probe = self._retained[0][1] if self._retained else self.last_id
        if probe is not None and not client.xrange(self.stream, probe, probe):
            segments = self._overflow.take()
            items = list(self._retained)
            logger.warning("flowcept: Redis restarted without entry %s; resending %d unconfirmed batch(es) and "
                           "%d segment(s) of older ones kept on disk", probe, len(items), len(segments))
            self._retained.clear()
            self._retained_bytes = 0
            try:
                for segment in segments:
                    for count, body in self._overflow.batches(segment):
                        self._seq += 1
                        fields = {"b": body, "p": self.producer_id, "s": self._seq, "n": count, "e": "json"}
                        self._on_sent(client.xadd(self.stream, fields), fields, count, count_as_sent=False)
                for _, _, fields, _ in items:
                    self._on_sent(client.xadd(self.stream, fields), fields, int(fields["n"]), count_as_sent=False)
            except BaseException:
                # Lost again midway: keep every copy (the old ones first, so the next check probes an entry
                # that is gone and resends again); what gets resent twice merges by id.
                self._overflow.segments.extendleft(reversed(segments))
                self._retained = deque(items + list(self._retained))
                self._retained_bytes = sum(item[3] for item in self._retained)
                raise
            self._overflow.discard(segments)
        self._check_loss = False

    def _spill(self, fields: dict, count: int, batch=None) -> None:
        if not count:
            return
        if batch is None:
            from flowcept.buffer import EncodedBatch

            batch = EncodedBatch(fields["b"], count)
        data = batch.lines(drop_data=False)
        if self._spill_fd is None:
            self._spill_fd = open_private(self.spill_path)  # 0600, folders 0700
        view = memoryview(data)
        while view:
            view = view[os.write(self._spill_fd, view):]
        if not self.spilled:
            logger.warning("flowcept: Redis at %s stayed unreachable; records are being spilled to %s (load them "
                           "later with `flowcept ingest %s`)", self._where(), self.spill_path, self.spill_path)
        self.spilled += count

    def _replay_some(self, chunk: int = 2000) -> None:
        """Send spilled records on to the stream; delete the spill file once it is all sent. Only this process
        writes its spill file, so reading it from an offset is safe."""
        sent = 0
        try:
            with open(self.spill_path, "rb") as f:
                f.seek(self._replay_offset)
                lines: list[bytes] = []
                while self.spilled:
                    line = f.readline()
                    if line.strip():
                        lines.append(line.strip())
                    if lines and (len(lines) >= chunk or not line):
                        sent += self._xadd_lines(lines)
                        self._replay_offset = f.tell()
                        lines = []
                    if not line:
                        break
        except FileNotFoundError:
            self.spilled = 0
        except _LOST as exc:
            logger.warning("flowcept: Redis lost while replaying %s (%s); it will be retried", self.spill_path, exc)
            self._down_since = time.monotonic()
            self._check_loss = True
            self._drop_client()
        except redis_exc.RedisError as exc:
            logger.warning("flowcept: Redis refused replayed records from %s (%s)", self.spill_path, exc)
        if sent:
            logger.info("flowcept: replayed %d spilled record(s) from %s into Redis", sent, self.spill_path)
        if self.spilled <= 0:
            self.spilled = 0
            self._replay_offset = 0
            if self._spill_fd is not None:
                with contextlib.suppress(OSError):
                    os.close(self._spill_fd)
                self._spill_fd = None
            with contextlib.suppress(FileNotFoundError):
                os.remove(self.spill_path)
            if sent:
                logger.warning("flowcept: every spilled record from %s is now in Redis", self.spill_path)

    def _xadd_lines(self, lines: list[bytes]) -> int:
        self._seq += 1
        fields = {"b": b"[" + b",".join(lines) + b"]", "p": self.producer_id, "s": self._seq, "n": len(lines),
                  "e": "json"}
        self._on_sent(self.client.xadd(self.stream, fields), fields, len(lines))
        self.spilled -= len(lines)
        return len(lines)

    def _drop_client(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()

    def _where(self) -> str:
        if self.mq.uri:
            from flowcept.settings import _redact_uri

            return _redact_uri(self.mq.uri)
        return f"{self.mq.host}:{self.mq.port}"

    # ---- any thread ---------------------------------------------------------------------------------------
    def hurry(self, deadline: float | None) -> None:
        """Spill instead of retrying past ``deadline`` (a ``time.monotonic()`` value): stop() is waiting."""
        self._hurry_by = deadline

    def flush(self, timeout: float | None = None) -> bool:
        """Send spilled records on (waiting for a lost broker to come back) until none is left or the deadline passes: ``timeout``, else the stop() deadline given to
        :meth:`hurry`, else ``reconnect_deadline_secs``. True when every record written so far is in Redis."""
        self._check_fork()
        if self.spilled:
            now = time.monotonic()
            deadline = now + timeout if timeout is not None else (self._hurry_by or now + self.reconnect_deadline_secs)
            while self.spilled and time.monotonic() < deadline:
                if not self._broker_back():
                    time.sleep(0.05)
                    continue
                self._replay_some()
                if self.spilled:
                    time.sleep(0.02)
        if self._spill_fd is not None:
            with contextlib.suppress(OSError):
                os.fsync(self._spill_fd)
        if self.last_id is not None and self._down_since is None:
            try:
                self._check_restart()
            except redis_exc.RedisError as exc:
                logger.debug("flowcept: could not check the Redis server at flush: %r", exc)
        return self.spilled == 0

    def register_workflow(self, workflow_id: str) -> None:
        """Note this producer as running for ``workflow_id`` (see :func:`workflow_flushed`)."""
        self._mark(workflow_id, "running")

    def mark_flushed(self, workflow_id: str) -> None:
        """Note that everything this producer captured for ``workflow_id`` is in Redis."""
        self._mark(workflow_id, f"flushed {self.last_id or ''}".rstrip())

    def _mark(self, workflow_id: str, state: str) -> None:
        key = producers_key(self.stream, workflow_id)
        try:
            pipe = self.client.pipeline(transaction=False)
            pipe.hset(key, self.producer_id, state)
            pipe.expire(key, PRODUCERS_TTL_SECS)
            pipe.execute()
        except redis_exc.RedisError as exc:
            logger.warning("flowcept: could not note producer state %r in Redis: %s", state, exc)

    def unconfirmed(self) -> int:
        """Records this process sent that the keepers have not acknowledged yet, plus those spilled (best effort)."""
        try:
            boundary = acked_below(self.client, self.stream, self.group)
        except redis_exc.RedisError:
            boundary = None
        pending = sum(int(f["n"]) for key, _, f, _ in list(self._retained) if boundary is None or key >= boundary)
        return pending + self._overflow.records + self.spilled

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._pid == os.getpid():
            self._overflow.close()
        if self._spill_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._spill_fd)
            self._spill_fd = None
        self._drop_client()
