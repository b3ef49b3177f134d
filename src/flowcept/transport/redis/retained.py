"""Retained copies: the batches a producer sent that the keepers have not acknowledged yet.

Kept to resend them when Redis restarted without them (a server without persistence): the newest
:data:`RETAIN_MAX_BYTES` in memory, older ones in segment files beside the spill file, so memory stays bounded
however far the keepers lag. Everything below the keepers' acknowledged stream position is dropped.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections import deque
from typing import Iterator

from flowcept._files import open_private
from flowcept.transport.redis._client import parse_id

logger = logging.getLogger("flowcept")

#: Bytes of copies kept in memory; older copies move to segment files.
RETAIN_MAX_BYTES = 64 * 1024 * 1024


class _Overflow:
    """Copies past :data:`RETAIN_MAX_BYTES`, in segment files; a segment is deleted once the keepers acknowledged
    every entry in it. Lines are ``<count> <JSON array>``."""

    SEGMENT_BYTES = 64 * 1024 * 1024

    def __init__(self, base_path: str):
        self.base_path = base_path
        self.segments: deque = deque()  # [path, fd or None, max id tuple, bytes, records, first entry id]
        self._serial = 0

    @property
    def records(self) -> int:
        return sum(seg[4] for seg in self.segments)

    def add(self, key: tuple, entry_id: str, body: bytes, count: int) -> None:
        seg = self.segments[-1] if self.segments and self.segments[-1][1] is not None else None
        if seg is None:
            self._serial += 1
            path = f"{self.base_path}.retained.{self._serial}"
            seg = [path, open_private(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), key, 0, 0, entry_id]
            self.segments.append(seg)
        line = str(count).encode() + b" " + body + b"\n"
        view = memoryview(line)
        while view:
            view = view[os.write(seg[1], view):]
        seg[2], seg[3], seg[4] = key, seg[3] + len(line), seg[4] + count
        if seg[3] >= self.SEGMENT_BYTES:
            os.close(seg[1])
            seg[1] = None

    def prune(self, boundary: tuple) -> None:
        while self.segments and self.segments[0][2] < boundary:
            self._remove(self.segments.popleft())

    def take(self) -> list:
        taken, self.segments = list(self.segments), deque()
        for seg in taken:
            if seg[1] is not None:
                os.close(seg[1])
                seg[1] = None
        return taken

    @staticmethod
    def batches(segment) -> Iterator[tuple[int, bytes]]:
        with open(segment[0], "rb") as f:
            for line in f:
                count, _, body = line.rstrip(b"\n").partition(b" ")
                if body:
                    yield int(count), body

    def discard(self, segments) -> None:
        for seg in segments:
            self._remove(seg)

    @staticmethod
    def _remove(seg) -> None:
        if seg[1] is not None:
            with contextlib.suppress(OSError):
                os.close(seg[1])
        with contextlib.suppress(FileNotFoundError):
            os.remove(seg[0])


class RetainedCopies:
    """Copies of sent entries, oldest first, until the keepers acknowledge them (flusher thread only).

    Args:
        base_path: where overflow segments go (``<base_path>.retained.<n>``).
    """

    def __init__(self, base_path: str):
        self._memory: deque = deque()  # (id tuple, entry id, body, count)
        self._bytes = 0
        self._overflow = _Overflow(base_path)

    def __len__(self) -> int:
        return len(self._memory) + len(self._overflow.segments)

    def add(self, entry_id: str, body: bytes, count: int) -> None:
        self._memory.append((parse_id(entry_id), entry_id, body, count))
        self._bytes += len(body)
        while self._bytes > RETAIN_MAX_BYTES and len(self._memory) > 1:
            key, old_id, old, old_count = self._memory.popleft()
            self._bytes -= len(old)
            try:
                self._overflow.add(key, old_id, old, old_count)
            except OSError as exc:
                logger.warning("flowcept: cannot keep a copy of an unacknowledged batch on disk (%s)", exc)

    def prune(self, boundary: tuple) -> None:
        """Drop the copies below the keepers' acknowledged position."""
        memory = self._memory
        while memory and memory[0][0] < boundary:
            self._bytes -= len(memory.popleft()[2])
        self._overflow.prune(boundary)

    def oldest_id(self) -> str | None:
        """The entry id of the oldest copy, on disk or in memory (its absence from the stream means the stream was
        lost: acknowledged entries stay in the stream, unacknowledged ones are never trimmed)."""
        if self._overflow.segments:
            return self._overflow.segments[0][5]
        return self._memory[0][1] if self._memory else None

    def unconfirmed(self, boundary: tuple | None) -> int:
        """Records in copies at or above ``boundary`` (all when None)."""
        pending = sum(c for key, _, _, c in list(self._memory) if boundary is None or key >= boundary)
        return pending + self._overflow.records

    def take(self) -> tuple[list, list]:
        """Detach every copy to resend it: ``(segments, items)``, oldest first; see :meth:`batches`."""
        segments = self._overflow.take()
        items = list(self._memory)
        self._memory.clear()
        self._bytes = 0
        return segments, items

    def batches(self, segments: list, items: list) -> Iterator[tuple[bytes, int]]:
        """Every ``(body, count)`` of detached copies, oldest first."""
        for segment in segments:
            for count, body in self._overflow.batches(segment):
                yield body, count
        for _, _, body, count in items:
            yield body, count

    def put_back(self, segments: list, items: list) -> None:
        """A resend failed midway: keep every copy, the old ones first, so the next check probes an entry that is
        gone and resends again (what is resent twice merges by id)."""
        self._overflow.segments.extendleft(reversed(segments))
        self._memory = deque(items + list(self._memory))
        self._bytes = sum(len(m[2]) for m in self._memory)

    def discard(self, segments: list) -> None:
        self._overflow.discard(segments)

    def close(self) -> None:
        self._overflow.discard(self._overflow.take())
        self._memory.clear()
        self._bytes = 0
