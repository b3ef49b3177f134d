"""A producer's spill file: batches the broker could not take, kept on disk and replayed once it answers again.

One file per process (``mq.spill_path`` with ``_<host>_<pid>`` before the suffix), JSONL, one record per line, so
``flowcept ingest`` loads one left behind by a process that ended while the broker was away.
"""

from __future__ import annotations

import contextlib
import os
import socket
from typing import Callable

from flowcept._files import open_private


def spill_file_path(base: str) -> str:
    """This process's spill file: ``base`` with ``_<host>_<pid>`` before the suffix (never shared by processes)."""
    root, ext = os.path.splitext(os.path.abspath(base))
    return f"{root}_{socket.gethostname()}_{os.getpid()}{ext or '.jsonl'}"


class SpillFile:
    """Append batches; replay them in order through a send function; delete the file once all are sent.

    Only the owning process writes and reads it, from the flusher thread (``sync`` and ``close`` from any thread).

    Args:
        base: ``mq.spill_path``.

    Attributes:
        path: this process's file.
        records: records in the file not yet replayed.
    """

    def __init__(self, base: str):
        self.base = base
        self.path = spill_file_path(base)
        self.records = 0
        self._fd: int | None = None
        self._offset = 0  # bytes already replayed

    def append(self, batch) -> None:
        """Append an :class:`flowcept.buffer.EncodedBatch`, one record per line (``data`` fields kept)."""
        if self._fd is None:
            self._fd = open_private(self.path)  # 0600, folders 0700
        view = memoryview(batch.lines(drop_data=False))
        while view:
            view = view[os.write(self._fd, view):]
        self.records += len(batch)

    def replay(self, send: Callable[[bytes, int], None], chunk: int = 2000) -> int:
        """Send the spilled records on, ``chunk`` per JSON array, oldest first; returns how many were sent.

        Stops at the first failure of ``send`` (re-raised): what was sent before stays counted as sent, and the next
        call resumes after it. The file is deleted once every record is sent.
        """
        sent = 0
        try:
            with open(self.path, "rb") as f:
                f.seek(self._offset)
                lines: list[bytes] = []
                while self.records > 0:
                    line = f.readline()
                    if line.strip():
                        lines.append(line.strip())
                    if lines and (len(lines) >= chunk or not line):
                        send(b"[" + b",".join(lines) + b"]", len(lines))
                        self.records -= len(lines)
                        sent += len(lines)
                        self._offset = f.tell()
                        lines = []
                    if not line:
                        break
        except FileNotFoundError:
            self.records = 0
        if self.records <= 0:
            self.discard()
        return sent

    def discard(self) -> None:
        """Forget the file (every record in it was sent) and delete it."""
        self.records = 0
        self._offset = 0
        self.close()
        with contextlib.suppress(FileNotFoundError):
            os.remove(self.path)

    def sync(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.fsync(self._fd)

    def close(self) -> None:
        """Close the file, keeping it (idempotent)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)
