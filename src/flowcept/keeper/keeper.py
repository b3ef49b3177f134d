"""The keeper: reads batches through a transport's :class:`flowcept.transport.Reader`, upserts them into the
store, then acknowledges them. It knows no broker: Redis Streams and RabbitMQ differ only behind the reader.

::

    reader.read() ──▶ [Delivery] ──▶ decode ──▶ store.upsert_encoded ──▶ commit ──▶ reader.ack()
      (own unacknowledged batches, then those of dead keepers, then new ones)

A batch is acknowledged only after the store committed it, so a keeper killed at any point loses nothing: its
unacknowledged batches go to another keeper (claimed from the stream, or requeued by the broker) and are written
again. Records merge by id, so writing twice is harmless. Several keepers in one group share the batches, each
going to one of them.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

import orjson

from flowcept._files import open_private_file
from flowcept.buffer import EncodedBatch
from flowcept.errors import BrokerUnreachableError, FlowceptError, StoreError

logger = logging.getLogger("flowcept")

_BACKOFF_MAX_SECS = 2.0


@dataclass
class KeeperStats:
    """What a keeper did: batches and records stored, batches claimed from dead keepers, failures retried."""

    entries: int = 0
    records: int = 0
    claimed: int = 0
    store_retries: int = 0
    broker_retries: int = 0
    rejected: int = 0


class _BadBatch(Exception):
    """The store answers but refused a batch: its data, not the store, is the problem."""


class _Abandon(Exception):
    """The keeper was stopped while the store kept failing: leave the batch unacknowledged for another keeper."""


def decode_delivery(delivery) -> tuple[bytes | None, list[dict] | None, int]:
    """One batch as ``(JSON array body without brackets, docs, count)``; one of the first two is None."""
    body = delivery.body
    if body is None:
        return None, None, 0
    if delivery.encoding == "msgpack":
        import msgpack

        docs = msgpack.unpackb(body, raw=False)
        if isinstance(docs, dict):
            docs = [docs]
        return None, docs, len(docs)
    inner = body.strip()[1:-1].strip() if body.lstrip()[:1] == b"[" else body
    return inner, None, delivery.count


def decode_entry(fields: dict) -> tuple[bytes | None, list[dict] | None, int]:
    """One Redis stream entry's fields as :func:`decode_delivery` decodes a batch (kept for older callers)."""
    from flowcept.transport import Delivery

    enc = fields.get(b"e", b"json")
    return decode_delivery(Delivery(None, fields.get(b"b"), int(fields.get(b"n", 0) or 0), enc.decode()))


def batch_docs(delivery) -> list[dict]:
    """The records of one batch, decoded (for consumers that handle records one by one)."""
    inner, docs, _ = decode_delivery(delivery)
    if docs is None:
        docs = orjson.loads(b"[" + inner + b"]") if inner else []
    return docs


class Keeper:
    """The persistence consumer.

    Args:
        settings: flowcept settings (``mq`` for the transport, ``databases`` for the store).
        store: where records go; default ``make_store(settings)``. Batches it refuses while it answers (bad data)
            are acknowledged and set aside in ``<mq.spill_path stem>_rejected.jsonl``.
        consumer: this keeper's name in the group; default ``host:pid:random`` (a restarted keeper is a new
            consumer and claims the old one's batches once they are idle).
        claim_idle_secs: batches delivered to a keeper and not acknowledged for this long are claimed (where the
            broker does not requeue them by itself).
        read_count: batches per read and store transaction.
        block_ms: how long one read waits for new batches.
        reader: the :class:`flowcept.transport.Reader`; default ``make_reader(settings)`` for ``mq.type``.
    """

    def __init__(self, settings, store=None, consumer: str | None = None, claim_idle_secs: float = 30.0,
                 read_count: int = 8, block_ms: int = 200, reader=None):
        from flowcept.transport import keepers_group, make_reader

        self.settings = settings
        self.stream = settings.mq.channel
        self.group = keepers_group(settings.mq)
        self.reader = reader or make_reader(settings, consumer=consumer, claim_idle_secs=claim_idle_secs,
                                            prefetch=read_count)
        self.consumer = self.reader.consumer
        if store is None:
            from flowcept.store import make_store

            store = make_store(settings)
            if store is None:
                raise FlowceptError("the keeper needs a store: enable databases.sqlite or databases.postgres "
                                    "(and project.db_flush_mode: online)")
        self.store = store
        # Batches the store refuses (malformed data) go here instead of blocking the queue.
        self.rejects_path = os.path.splitext(settings.mq.spill_path)[0] + "_rejected.jsonl"
        self.block_secs = block_ms / 1000
        self.stats = KeeperStats()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

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
        """Stop (waiting up to ``timeout``), then close the store and the reader. If the thread did not end in time
        it keeps its store: closing it under a running write would fail that write."""
        if not self.stop(timeout):
            logger.warning("flowcept keeper: still finishing a batch after %ss; leaving it to end", timeout)
            return
        try:
            self.store.close()
        finally:
            self.reader.close()

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
                deliveries = self.reader.read(self.block_secs)
                self.stats.claimed = self.reader.claimed
                if deliveries:
                    self._process(deliveries)
                delay = 0.05
            except _Abandon:
                break  # stopped while the store was failing: the batch stays unacknowledged for the next keeper
            except BrokerUnreachableError as exc:
                self.stats.broker_retries += 1
                logger.warning("flowcept keeper: the broker is unreachable (%s); retrying", exc)
                stop.wait(delay)
                delay = min(delay * 2, _BACKOFF_MAX_SECS)
            except Exception as exc:  # noqa: BLE001 - a keeper logs and keeps going
                logger.warning("flowcept keeper: %r; retrying", exc)
                stop.wait(delay)
                delay = min(delay * 2, _BACKOFF_MAX_SECS)
        self.reader.close()
        return self.stats

    def _process(self, deliveries: Sequence) -> None:
        parts, docs, count = [], [], 0
        decoded = []  # (delivery, json body, docs, count), to retry one by one
        for delivery in deliveries:
            if delivery.body is None:
                continue
            try:
                inner, batch_docs_, n = decode_delivery(delivery)
                if batch_docs_ is not None and not all(isinstance(d, dict) for d in batch_docs_):
                    raise ValueError("a batch's records must be mappings")
            except Exception as exc:  # noqa: BLE001 - a malformed batch must not block the queue
                self._reject(delivery.tag, delivery.body, exc)
                continue
            decoded.append((delivery, inner, batch_docs_, n))
            if batch_docs_ is not None:
                docs.extend(batch_docs_)
                count += n
            elif inner:
                parts.append(inner)
                count += n
        try:
            self._commit(parts, docs, count)
        except _BadBatch:
            # The store answers but refused the batch: find the batches it refuses and set them aside, so one bad
            # batch never blocks the queue (nor every keeper that would claim it).
            for delivery, inner, batch_docs_, n in decoded:
                try:
                    self._commit([inner] if inner else [], batch_docs_ or [], n)
                except _BadBatch as exc:
                    self._reject(delivery.tag, b"[" + inner + b"]" if inner else orjson.dumps(batch_docs_),
                                 exc.__cause__)
                    count -= n
        self.reader.ack(deliveries)
        self.stats.entries += len(deliveries)
        self.stats.records += count

    def _commit(self, parts: list[bytes], docs: list[dict], count: int) -> None:
        """Write to the store, retrying store failures until it succeeds or the keeper is stopped."""
        delay = 0.1
        while True:
            try:
                if parts:
                    self.store.upsert_encoded(EncodedBatch(b"[" + b",".join(parts) + b"]", count))
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
                    # Not acknowledged: another keeper (or this one, restarted) will write these batches.
                    raise _Abandon() from exc
                delay = min(delay * 2, _BACKOFF_MAX_SECS)

    def _store_answers(self) -> bool:
        try:
            self.store.count("tasks", {"task_id": "flowcept-keeper-probe"})
            return True
        except Exception:  # noqa: BLE001 - any failure here means the store itself is the problem
            return False

    def _reject(self, tag, body: bytes | None, exc: BaseException | None) -> None:
        """Set a batch the store refuses aside in the rejects file (acknowledged, counted, logged)."""
        self.stats.rejected += 1
        path = os.path.abspath(self.rejects_path)
        try:
            with open_private_file(path, "ab") as f:
                f.write(orjson.dumps({"entry_id": tag.decode() if isinstance(tag, bytes) else str(tag),
                                      "error": repr(exc), "body": (body or b"").decode("utf-8", "replace")})
                        + b"\n")
        except OSError as write_exc:
            logger.error("flowcept keeper: cannot write the rejects file %s: %s", path, write_exc)
        logger.warning("flowcept keeper: batch %s was refused (%r) and set aside in %s", tag, exc, path)


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
        BackendUnavailableError: the transport's (or the store's) library is not installed.
        ConfigError: the message queue is not enabled.
    """
    from flowcept.errors import ConfigError
    from flowcept.settings import get_settings

    settings = settings or get_settings()
    if not settings.mq.enabled:
        raise ConfigError("the keeper reads the message queue; set mq.enabled: true (and mq.type: redis or "
                          "rabbitmq)", key="mq.enabled")
    stop_event = stop_event or threading.Event()
    previous = {}
    if handle_signals and threading.current_thread() is threading.main_thread():
        # Installed first: a signal that arrives while the keeper is being set up still ends it cleanly.
        def on_signal(signum, frame):
            logger.warning("flowcept keeper: signal %d, finishing the current batch", signum)
            stop_event.set()

        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, on_signal)
    try:
        keeper = Keeper(settings, store=store, consumer=consumer, claim_idle_secs=claim_idle_secs)
    except BaseException:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        raise
    logger.info("flowcept keeper %s: reading %s", keeper.consumer, keeper.reader.describe())
    try:
        return keeper.run(stop_event)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        keeper.store.close()


def ingest_file(path: str, store, batch_size: int = 5000,
                progress: Callable[[int], None] | None = None,
                unstorable: Callable[[int, str], None] | None = None) -> int:
    """Load a JSONL file (a spill file or a buffer file) into ``store``; safe to run twice (records merge by id).

    Args:
        path: the file; one JSON record per line; blank and malformed lines are skipped (and logged).
        store: the destination store.
        batch_size: records per store transaction.
        progress: called with the number of records loaded so far after each batch.
        unstorable: called with the line number and the reason for each line that parses but cannot be encoded
            for the store (nested past the encoder's depth limit); such lines are skipped, the others loaded.

    Returns:
        The number of records loaded.

    Raises:
        FileNotFoundError: no such file.
        StoreError: the store failed.
    """
    from flowcept.buffer import EncodedBatch
    from flowcept.records import kind_of

    total, bad = 0, 0

    def commit(docs: list[dict], numbers: list[int]) -> int:
        try:
            encoded = orjson.dumps(docs)  # one encoder call for the batch
        except orjson.JSONEncodeError:
            kept = []
            for doc, number in zip(docs, numbers):  # rare: find the lines the encoder refuses
                try:
                    orjson.dumps(doc)
                    kept.append(doc)
                except orjson.JSONEncodeError as exc:
                    if unstorable is not None:
                        unstorable(number, str(exc))
            docs, encoded = kept, orjson.dumps(kept)
        if docs:
            store.upsert_encoded(EncodedBatch(encoded, len(docs)))
        return len(docs)

    with open(path, "rb") as f:
        docs: list[dict] = []
        numbers: list[int] = []
        for number, line in _lines(f):
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
            docs.append(doc)
            numbers.append(number)
            if len(docs) >= batch_size:
                total += commit(docs, numbers)
                docs, numbers = [], []
                if progress is not None:
                    progress(total)
        if docs:
            total += commit(docs, numbers)
            if progress is not None:
                progress(total)
    if bad:
        logger.warning("flowcept ingest: skipped %d malformed line(s) in %s", bad, path)
    return total


def _lines(f) -> Iterable[tuple[int, bytes]]:
    """The file's non-blank lines, stripped, with their numbers (from 1)."""
    for number, line in enumerate(f, 1):
        line = line.strip()
        if line:
            yield number, line
