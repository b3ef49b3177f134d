"""The keeper: reads the record stream through a consumer group, upserts batches into the store, then acknowledges.

::

    XAUTOCLAIM (entries of a keeper idle past claim_idle_secs) ─┐
    XREADGROUP <group> <me> ">" ────────────────────────────────┴─▶ decode ─▶ store.upsert ─▶ commit ─▶ XACK

An entry is acknowledged only after the store committed it, so a keeper killed at any point loses nothing: its
pending entries are claimed by another keeper (or by itself, restarted) and written again. Records merge by id,
so writing twice is harmless. Several keepers in one group share the stream, each entry going to one of them.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterable

import orjson

from flowcept._files import open_private_file
from flowcept.buffer import EncodedBatch
from flowcept.errors import FlowceptError, StoreError

logger = logging.getLogger("flowcept")

_BACKOFF_MAX_SECS = 2.0


@dataclass
class KeeperStats:
    """What a keeper did: entries and records stored, entries claimed from dead keepers, failures retried."""

    entries: int = 0
    records: int = 0
    claimed: int = 0
    store_retries: int = 0
    broker_retries: int = 0
    rejected: int = 0


class _BadBatch(Exception):
    """The store answers but refused a batch: its data, not the store, is the problem."""


def decode_entry(fields: dict) -> tuple[bytes | None, list[dict] | None, int]:
    """One stream entry as ``(json array body without brackets, docs, count)``; one of the first two is None."""
    body = fields.get(b"b")
    if body is None:
        return None, None, 0
    enc = fields.get(b"e", b"json")
    count = int(fields.get(b"n", 0) or 0)
    if enc == b"msgpack":
        import msgpack

        docs = msgpack.unpackb(body, raw=False)
        if isinstance(docs, dict):
            docs = [docs]
        return None, docs, len(docs)
    inner = body.strip()[1:-1].strip() if body.lstrip()[:1] == b"[" else body
    return inner, None, count


class Keeper:
    """The persistence consumer.

    Args:
        settings: flowcept settings (``mq`` for the stream, ``databases`` for the store).
        store: where records go; default ``make_store(settings)``. Entries it refuses while it answers (bad data)
            are acknowledged and set aside in ``<mq.spill_path stem>_rejected.jsonl``.
        consumer: this keeper's name in the group; default ``host:pid:random`` (a restarted keeper is a new
            consumer and claims the old one's entries once they are idle).
        claim_idle_secs: entries delivered to a keeper and not acknowledged for this long are claimed.
        read_count: stream entries (each a flushed batch) per read and store transaction.
        block_ms: how long one read waits for new entries.
    """

    def __init__(self, settings, store=None, consumer: str | None = None, claim_idle_secs: float = 30.0,
                 read_count: int = 8, block_ms: int = 200):
        from flowcept.transport.redis_streams import group_name

        self.settings = settings
        self.stream = settings.mq.channel
        self.group = group_name(settings.mq)
        self.consumer = consumer or f"{socket.gethostname()}:{os.getpid()}:{os.urandom(3).hex()}"
        if store is None:
            from flowcept.store import make_store

            store = make_store(settings)
            if store is None:
                raise FlowceptError("the keeper needs a store: enable databases.sqlite or databases.postgres "
                                    "(and project.db_flush_mode: online)")
        self.store = store
        # Entries the store refuses (malformed data) go here instead of blocking the stream.
        self.rejects_path = os.path.splitext(settings.mq.spill_path)[0] + "_rejected.jsonl"
        self.claim_idle_ms = int(claim_idle_secs * 1000)
        self.read_count = int(read_count)
        self.block_ms = int(block_ms)
        self.stats = KeeperStats()
        self.committed = threading.Condition()  # notified after each commit (stop() waits on it)
        self._client = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._next_claim = 0.0
        self._read_own_pending = True

    # ---- control ------------------------------------------------------------------------------------------
    def start(self, daemon: bool = True) -> "Keeper":
        """Run in a background thread; returns self."""
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self.run, name="flowcept-keeper", daemon=daemon)
            self._thread.start()
        return self

    def stop(self, timeout: float | None = None) -> bool:
        """Finish the batch in hand, acknowledge it and end the thread. Returns False if it did not end in time."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
            return not thread.is_alive()
        return True

    def close(self, timeout: float | None = None) -> None:
        """Stop (waiting up to ``timeout``), then close the store and the Redis connection. If the thread did not
        end in time it keeps its store: closing it under a running write would fail that write."""
        if not self.stop(timeout):
            logger.warning("flowcept keeper: still finishing a batch after %ss; leaving it to end", timeout)
            return
        try:
            self.store.close()
        finally:
            self._drop_client()

    # ---- the loop -----------------------------------------------------------------------------------------
    def run(self, stop_event: threading.Event | None = None) -> KeeperStats:
        """Consume until ``stop_event`` (or :meth:`stop`) is set; the batch in hand is finished first."""
        from flowcept.context import suppress_capture

        suppress_capture()
        stop = stop_event or self._stop
        if stop_event is not None:
            self._stop = stop_event
        delay = 0.05
        while not stop.is_set():
            try:
                self._step()
                delay = 0.05
            except _Abandon:
                break  # stopped while the store was failing: the batch stays pending for the next keeper
            except _redis_lost() as exc:
                self.stats.broker_retries += 1
                logger.warning("flowcept keeper: Redis unreachable (%s); retrying", exc)
                self._drop_client()
                stop.wait(delay)
                delay = min(delay * 2, _BACKOFF_MAX_SECS)
            except Exception as exc:  # noqa: BLE001 - a keeper logs and keeps going
                logger.warning("flowcept keeper: %r; retrying", exc)
                self._drop_client()
                stop.wait(delay)
                delay = min(delay * 2, _BACKOFF_MAX_SECS)
        self._drop_client()
        return self.stats

    def _step(self) -> None:
        client = self._redis()
        now = time.monotonic()
        if self._read_own_pending:
            # Entries delivered to this consumer name before a reconnect and never acknowledged.
            resp = self._xreadgroup(client, "0", block=None)
            entries = resp[0][1] if resp else []
            if not entries:
                self._read_own_pending = False
            else:
                self._process(client, entries)
                return
        if now >= self._next_claim:
            self._next_claim = now + max(0.5, self.claim_idle_ms / 2000)
            start = "0-0"
            while True:
                result = client.xautoclaim(self.stream, self.group, self.consumer, self.claim_idle_ms, start,
                                           count=self.read_count)
                start, claimed = result[0], [e for e in result[1] if e[1]]
                if claimed:
                    self.stats.claimed += len(claimed)
                    logger.info("flowcept keeper: claimed %d entries of a keeper that stopped answering",
                                len(claimed))
                    self._process(client, claimed)
                if start in (b"0-0", "0-0") or self._stop.is_set():
                    break
        resp = self._xreadgroup(client, ">", block=self.block_ms)
        if resp:
            self._process(client, resp[0][1])

    def _xreadgroup(self, client, start: str, block: int | None):
        from redis.exceptions import ResponseError

        try:
            return client.xreadgroup(self.group, self.consumer, {self.stream: start}, count=self.read_count,
                                     block=block)
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            self._ensure_group(client)  # the stream or group is gone (e.g. Redis restarted without persistence)
            return None

    def _process(self, client, entries: list) -> None:
        ids, parts, docs, count = [], [], [], 0
        decoded = []  # (entry id, json body, docs, count) per entry, to retry one by one
        for entry_id, fields in entries:
            ids.append(entry_id)
            if not fields:
                continue
            try:
                inner, entry_docs, n = decode_entry(fields)
                if entry_docs is not None and not all(isinstance(d, dict) for d in entry_docs):
                    raise ValueError("an entry's records must be mappings")
            except Exception as exc:  # noqa: BLE001 - a malformed entry must not block the stream
                self._reject(entry_id, fields.get(b"b"), exc)
                continue
            decoded.append((entry_id, inner, entry_docs, n))
            if entry_docs is not None:
                docs.extend(entry_docs)
                count += n
            elif inner:
                parts.append(inner)
                count += n
        try:
            self._commit(parts, docs, count)
        except _BadBatch:
            # The store answers but refused the batch: find the entries it refuses and set them aside, so one
            # bad entry never blocks the stream (nor every keeper that would claim it).
            for entry_id, inner, entry_docs, n in decoded:
                try:
                    self._commit([inner] if inner else [], entry_docs or [], n)
                except _BadBatch as exc:
                    self._reject(entry_id, b"[" + inner + b"]" if inner else orjson.dumps(entry_docs), exc.__cause__)
                    count -= n
        client.xack(self.stream, self.group, *ids)
        self.stats.entries += len(ids)
        self.stats.records += count
        with self.committed:
            self.committed.notify_all()

    def _commit(self, parts: list[bytes], docs: list[dict], count: int) -> None:
        """Write to the store, retrying store failures until it succeeds or the keeper is stopped."""
        delay = 0.1
        while True:
            try:
                if parts:
                    upsert_encoded = getattr(self.store, "upsert_encoded", None)
                    joined = EncodedBatch(b"[" + b",".join(parts) + b"]", count)
                    if upsert_encoded is not None:
                        upsert_encoded(joined)
                    else:
                        self.store.upsert(joined.docs)
                    parts = []
                if docs:
                    self.store.upsert(docs)
                return
            except (StoreError, OSError) as exc:
                if self._store_answers():
                    raise _BadBatch() from exc
                self.stats.store_retries += 1
                logger.warning("flowcept keeper: store write failed (%s); retrying in %.1fs", exc, delay)
                if self._stop.wait(delay):
                    # Not acknowledged: another keeper (or this one, restarted) will write these entries.
                    raise _Abandon() from exc
                delay = min(delay * 2, _BACKOFF_MAX_SECS)

    def _store_answers(self) -> bool:
        try:
            self.store.count("tasks", {"task_id": "flowcept-keeper-probe"})
            return True
        except Exception:  # noqa: BLE001 - any failure here means the store itself is the problem
            return False

    def _reject(self, entry_id, body: bytes | None, exc: BaseException | None) -> None:
        """Set an entry the store refuses aside in the rejects file (acknowledged, counted, logged)."""
        self.stats.rejected += 1
        path = os.path.abspath(self.rejects_path)
        try:
            with open_private_file(path, "ab") as f:
                f.write(orjson.dumps({"entry_id": entry_id.decode() if isinstance(entry_id, bytes) else entry_id,
                                      "error": repr(exc), "body": (body or b"").decode("utf-8", "replace")})
                        + b"\n")
        except OSError as write_exc:
            logger.error("flowcept keeper: cannot write the rejects file %s: %s", path, write_exc)
        logger.warning("flowcept keeper: entry %s was refused (%r) and set aside in %s", entry_id, exc, path)

    # ---- redis --------------------------------------------------------------------------------------------
    def _redis(self):
        if self._client is None:
            from flowcept.transport.redis_streams import connect

            client = connect(self.settings.mq)
            self._ensure_group(client)
            self._client = client
            self._read_own_pending = True
        return self._client

    def _ensure_group(self, client) -> None:
        from redis.exceptions import ResponseError

        try:
            # Id 0: a keeper started after the producers still gets every entry already in the stream.
            client.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def _drop_client(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                client.close()
            except Exception:  # noqa: BLE001
                pass

    # ---- exact stops --------------------------------------------------------------------------------------
    def wait_committed(self, done: Callable[[], bool], timeout: float | None) -> bool:
        """Wait until ``done()`` is true, re-checking after each commit of this keeper (and twice a second, for
        commits of other keepers). Returns False when ``timeout`` passed first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if done():
                return True
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return False
            with self.committed:
                self.committed.wait(0.5 if remaining is None else min(0.5, remaining))


class _Abandon(Exception):
    """The keeper was stopped while the store kept failing: leave the batch unacknowledged for another keeper."""


def _redis_lost():
    from redis import exceptions as e

    return (e.ConnectionError, e.TimeoutError, e.BusyLoadingError)


def run_keeper(settings=None, stop_event: threading.Event | None = None, *, store=None,
               consumer: str | None = None, claim_idle_secs: float = 30.0,
               handle_signals: bool = True) -> KeeperStats:
    """Run a keeper in this thread until ``stop_event`` is set, or SIGTERM/SIGINT arrives (main thread only).

    On a signal the keeper finishes and acknowledges the batch in hand, then returns; the caller exits 0.

    Args:
        settings: default :func:`flowcept.settings.get_settings`.
        stop_event: set it to stop the keeper from another thread.
        store: default ``make_store(settings)``.
        handle_signals: install SIGTERM/SIGINT handlers that set ``stop_event`` (restored on return).

    Raises:
        BackendUnavailableError: redis-py (or the store's library) is not installed.
        ConfigError: the message queue is not enabled.
    """
    from flowcept.errors import ConfigError
    from flowcept.settings import get_settings

    settings = settings or get_settings()
    if not settings.mq.enabled:
        raise ConfigError("the keeper reads the message queue; set mq.enabled: true (and mq.type: redis)",
                          key="mq.enabled")
    import flowcept.transport.redis_streams  # noqa: F401 - BackendUnavailableError early

    stop_event = stop_event or threading.Event()
    keeper = Keeper(settings, store=store, consumer=consumer, claim_idle_secs=claim_idle_secs)
    previous = {}
    if handle_signals and threading.current_thread() is threading.main_thread():
        def on_signal(signum, frame):
            logger.warning("flowcept keeper: signal %d, finishing the current batch", signum)
            stop_event.set()

        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, on_signal)
    logger.info("flowcept keeper %s: reading stream %r as group %r", keeper.consumer, keeper.stream, keeper.group)
    try:
        return keeper.run(stop_event)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        keeper.store.close()


def ingest_file(path: str, store, batch_size: int = 5000,
                progress: Callable[[int], None] | None = None) -> int:
    """Load a JSONL file (a spill file or a buffer file) into ``store``; safe to run twice (records merge by id).

    Args:
        path: the file; one JSON record per line; blank and malformed lines are skipped (and logged).
        store: the destination store.
        batch_size: records per store transaction.
        progress: called with the number of records loaded so far after each batch.

    Returns:
        The number of records loaded.

    Raises:
        FileNotFoundError: no such file.
        StoreError: the store failed.
    """
    from flowcept.buffer import EncodedBatch
    from flowcept.records import kind_of

    total, bad = 0, 0
    upsert_encoded = getattr(store, "upsert_encoded", None)

    def commit(lines: list[bytes], docs: list[dict]) -> None:
        if upsert_encoded is not None:
            upsert_encoded(EncodedBatch(b"[" + b",".join(lines) + b"]", len(lines)))
        else:
            store.upsert(docs)

    with open(path, "rb") as f:
        lines: list[bytes] = []
        docs: list[dict] = []
        for line in _lines(f):
            try:
                doc = orjson.loads(line)
            except orjson.JSONDecodeError:
                bad += 1
                continue
            if not isinstance(doc, dict):
                bad += 1
                continue
            if "type" not in doc:
                # Records written by other tools may lack the discriminator: infer it as the stores do.
                kind = kind_of(doc)
                if kind is None:
                    bad += 1
                    continue
                doc["type"] = kind
            lines.append(orjson.dumps(doc))
            docs.append(doc)
            if len(lines) >= batch_size:
                commit(lines, docs)
                total += len(lines)
                lines, docs = [], []
                if progress is not None:
                    progress(total)
        if lines:
            commit(lines, docs)
            total += len(lines)
            if progress is not None:
                progress(total)
    if bad:
        logger.warning("flowcept ingest: skipped %d malformed line(s) in %s", bad, path)
    return total


def _lines(f) -> Iterable[bytes]:
    for line in f:
        line = line.strip()
        if line:
            yield line
