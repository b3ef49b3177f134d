"""The JSONL buffer file: every captured message as one compact JSON line (the documented offline format).

Each batch is appended with a single ``write`` on a file opened with ``O_APPEND``, so several threads or processes
can share one file without interleaving lines. The ``data`` payload is never written here.

The writes run on a thread of this sink's own: a ``write`` gives up the GIL and must take it back, which waits up to
the interpreter's switch interval (5 ms) while capture runs; the flusher would wait that long on every batch
(a fifth of the flat-out cost of ``@flowcept_task``, bench/bench_core.py). ``flush()`` waits for the thread.
"""

from __future__ import annotations

import logging
import os
import queue
import re
import threading
from pathlib import Path
from typing import Iterator, Sequence

import orjson

try:
    import fcntl
except ImportError:  # pragma: no cover - not on Windows
    fcntl = None

from flowcept._files import open_private, open_private_file
from flowcept.serialize import dumps

logger = logging.getLogger("flowcept")
#: Batches that may wait for the writing thread.
_PENDING_BATCHES = 16

def buffer_file_path(dump_settings, workflow_id: str | None = None, base: str | None = None) -> str:
    """The buffer file this process writes, per ``project.dump_buffer`` settings."""
    path = Path(base or dump_settings.path).absolute()
    stem, suffix = path.stem, path.suffix or ".jsonl"
    if workflow_id and dump_settings.append_workflow_id_to_path:
        stem = f"{stem}_{workflow_id}"
    if dump_settings.append_id_to_path:
        stem = f"{stem}_{os.getpid()}_{threading.get_ident()}"
    return str(path.with_name(stem + suffix))


class JsonlBufferFile:
    """Sink that appends every batch to a JSONL file."""

    name = "buffer file"
    primary = False

    def __init__(self, path: str):
        self.path = str(path)
        self._fd: int | None = None
        self._pid = None
        # Lines to append, flush events and None (stop), in order; the thread is made per process (after a fork the
        # parent's thread is not ours). Bounded: a slow disk makes the flusher wait instead of growing memory.
        self._todo: queue.Queue | None = None
        self._thread: threading.Thread | None = None
        self._thread_pid: int | None = None
        self._failed = 0  # records whose lines could not be written (taken by take_failures)

    def _open(self) -> int:
        if self._fd is None or self._pid != os.getpid():
            while True:
                fd = open_private(self.path)  # 0600, folders 0700
                if fcntl is None:
                    break
                # A shared lock says "in use": Flowcept() elsewhere will not delete the file under us. It may have
                # deleted it between our open and our lock: then open the new file instead.
                fcntl.flock(fd, fcntl.LOCK_SH)
                try:
                    if os.stat(self.path).st_ino == os.fstat(fd).st_ino:
                        break
                except FileNotFoundError:
                    pass
                os.close(fd)
            self._fd = fd
            self._pid = os.getpid()
        return self._fd

    def open_now(self) -> None:
        """Open (and lock) the file at start, so the "in use" mark exists before the first batch; start the writing
        thread now too (Python 3.12+ refuses new threads at interpreter exit, where a last batch may come)."""
        try:
            self._open()
        except OSError:
            pass  # reported, and counted, when a batch cannot be written
        self._writer()

    def write(self, batch) -> int:
        """Queue the batch's lines for the writing thread (or write them here when there is none: at interpreter
        exit); failures are reported and counted."""
        todo = self._writer()
        if todo is None:
            self._append(batch.lines(), len(batch))
        else:
            todo.put((batch.lines(), len(batch)))
        return 0

    def _writer(self) -> queue.Queue | None:
        """This process's queue to the writing thread, started on first use; None when no thread can be started."""
        thread = self._thread
        if thread is None or self._thread_pid != os.getpid() or not thread.is_alive():
            todo = queue.Queue(_PENDING_BATCHES)
            thread = threading.Thread(target=self._append_loop, args=(todo,), name="flowcept-buffer-file",
                                      daemon=True)
            try:
                thread.start()
            except RuntimeError:  # "can't create new thread at interpreter shutdown"
                self._drain_here()  # batches queued before, ahead of the caller's
                return None
            self._drain_here()  # what a dead thread left (none normally), in order, before new batches
            self._todo, self._thread, self._thread_pid = todo, thread, os.getpid()
        return self._todo

    def _append_loop(self, todo: queue.Queue) -> None:
        from flowcept.context import suppress_capture

        suppress_capture()
        while self._handle(todo.get()):
            pass

    def _handle(self, item) -> bool:
        """Carry out one queued item: lines to append, a flush event to set, or None (stop: returns False)."""
        if item is None:
            return False
        if isinstance(item, threading.Event):
            item.set()
        else:
            self._append(*item)
        return True

    def _append(self, payload: bytes, count: int) -> None:
        try:
            fd = self._open()
            view = memoryview(payload)
            while view:
                written = os.write(fd, view)
                view = view[written:]
        except Exception as exc:  # noqa: BLE001 - counted, reported; capture goes on
            from flowcept._internal_errors import report_internal_error

            self._failed += count
            report_internal_error(f"writing to {self.name}", exc)

    def _drain_here(self) -> None:
        """Write, on this thread, what waits in a queue whose thread is gone (this process's only)."""
        todo = self._todo
        if todo is None or self._thread_pid != os.getpid():
            return
        while True:
            try:
                self._handle(todo.get_nowait())
            except queue.Empty:
                return

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every batch written before this call is in the file (or counted as failed)."""
        if self._todo is None or self._thread_pid != os.getpid():
            return True
        if self._thread is None or not self._thread.is_alive():
            self._drain_here()
            return True
        done = threading.Event()
        self._todo.put(done)
        return done.wait(timeout)

    def take_failures(self) -> int:
        """Records that could not be written since the last call."""
        failed, self._failed = self._failed, 0
        return failed

    def close(self) -> None:
        if self._todo is not None and self._thread_pid == os.getpid():
            self.flush(timeout=60.0)
            self._todo.put(None)
            self._todo = self._thread = self._thread_pid = None
        if self._fd is not None and self._pid == os.getpid():
            try:
                os.close(self._fd)
            except OSError:
                pass
        self._fd = None


def delete_if_unused(path: str) -> bool:
    """Delete the buffer file unless a running process is writing it (it holds a shared lock); True if deleted."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                logger.info("flowcept: %s is being written by a running Flowcept; not deleting it", path)
                return False
        os.remove(path)
        return True
    finally:
        os.close(fd)


def iter_messages(path: str, counter: dict | None = None) -> Iterator[dict]:
    """Messages of a JSONL file in order; blank lines skipped, torn or corrupt lines skipped and counted."""
    bad = 0
    with open(path, "rb") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                msg = orjson.loads(line)
            except orjson.JSONDecodeError:
                bad += 1
                continue
            if type(msg) is dict:
                yield msg
            else:
                bad += 1
    if bad:
        logger.warning("flowcept: skipped %d corrupt or torn line(s) in %s", bad, path)
    if counter is not None:
        counter["skipped_lines"] = counter.get("skipped_lines", 0) + bad


def merge_messages(messages: Iterator[dict]) -> list[dict]:
    """One record per id, later messages of an id merged into the first one (order of first appearance)."""
    from flowcept.store.merge import coalesce

    return coalesce(messages)


def consolidate_files(base_path: str, workflow_id: str, cleanup: bool = True) -> str:
    """Merge the per-process files ``<stem>_<workflow_id>_<pid>_<thread id><suffix>`` into
    ``<stem>_<workflow_id><suffix>``."""
    path = Path(base_path)
    suffix = path.suffix or ".jsonl"
    target = path.with_name(f"{path.stem}_{workflow_id}{suffix}")
    # Only the names buffer_file_path makes for this workflow, the id taken literally: a glob on
    # "<stem>_<wf>*" would also take (and delete) the files of workflow "<wf>0", and read "[", "*", "?" in an id.
    piece_name = re.compile(re.escape(f"{path.stem}_{workflow_id}") + r"_\d+_\d+" + re.escape(suffix))
    folder = target.parent
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        names = []
    pieces = sorted(str(folder / name) for name in names if piece_name.fullmatch(name))
    if not pieces:
        if target.exists():
            return str(target)
        raise FileNotFoundError(f"no buffer files for workflow {workflow_id} next to {base_path}")
    with open_private_file(target, "ab") as out:
        for piece in pieces:
            with open(piece, "rb") as f:
                data = f.read()
            if data and not data.endswith(b"\n"):
                data += b"\n"
            out.write(data)
    if cleanup:
        for piece in pieces:
            os.remove(piece)
    return str(target)


def write_messages(path: str, docs: Sequence[dict]) -> None:
    """Append JSON-clean or raw records to ``path`` (used by ``Flowcept.dump_buffer``)."""
    with open_private_file(path, "ab") as f:
        for doc in docs:
            if "data" in doc:
                doc = {k: v for k, v in doc.items() if k != "data"}
            f.write(dumps(doc) + b"\n")
