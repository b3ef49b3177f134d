"""Objects in the SQLite store's file, with large content as files in a blob directory beside it.

::

    ~/.flowcept/flowcept.sqlite            tables objects, object_history, object_data (inline content)
    ~/.flowcept/flowcept.sqlite.blobs/     0700
        ab/ab12...ef                       0600, named by the sha256 of its bytes (identical content stored once)
        tmp/                               files being written, linked into place only once complete and synced;
                                           a save keeps its file here until its metadata is published

A delete removes a content file in a write transaction of its own, after checking again that no version names it;
a save checks in its publishing transaction that its content file is in place and links its kept file back if a
delete removed it meanwhile. Both transactions take SQLite's write lock, so one of the two always sees the other.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

from flowcept._files import prepare_store_file
from flowcept.errors import ObjectIntegrityError, QueryError, StoreError
from flowcept.store._filters import SQLITE
from flowcept.store.sqlite import _regexp  # the filter compiler's REGEXP, as on the record store's connections
from flowcept.store.objects._base import BlobInfo, ObjectStore, PerThreadConnections, translate
from flowcept.store.objects._content import CHUNK_SIZE, iter_chunks

__all__ = ["SqliteObjectStore"]

BUSY_TIMEOUT_S = 120
# A file left in tmp/ by a writer that died is removed by a later writer once it is this old.
_STALE_TMP_SECS = 24 * 3600
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS objects (id TEXT PRIMARY KEY, doc TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS object_history (id TEXT PRIMARY KEY, object_id TEXT NOT NULL, "
    "version INTEGER NOT NULL, doc TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS object_history_object_id ON object_history (object_id, version)",
    "CREATE TABLE IF NOT EXISTS object_data (sha256 TEXT PRIMARY KEY, data BLOB NOT NULL)",
)


class SqliteObjectStore(ObjectStore):
    """Objects beside a :class:`flowcept.store.sqlite.SqliteStore` (same file, own tables).

    One connection per thread (made anew in a forked child), so the store is safe across threads and forks.

    Args:
        path: the SQLite file (the store's ``databases.sqlite.path``).
    """

    dialect = SQLITE

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path).expanduser()
        self.blob_dir = self.path.with_name(self.path.name + ".blobs")
        self._schema_ready = False
        self._swept = False
        self._conns = PerThreadConnections(self._connect)

    def __repr__(self) -> str:
        return f"SqliteObjectStore({str(self.path)!r})"

    def _errors(self, action: str):
        return translate((sqlite3.Error, OSError),
                         lambda exc: StoreError(f"SQLite object store {self.path}: {action} failed: {exc}"))

    def _connect(self) -> sqlite3.Connection:
        if not self._schema_ready:
            prepare_store_file(self.path, warn=False)  # 0600 file in a 0700 folder when new (the record store warns)
        conn = sqlite3.connect(str(self.path), timeout=BUSY_TIMEOUT_S, isolation_level=None)
        try:
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_S * 1000}")
            conn.execute("PRAGMA synchronous = NORMAL")  # as the record store: WAL survives a crash of the process
            conn.create_function("REGEXP", 2, _regexp, deterministic=True)
            if not self._schema_ready:
                with contextlib.suppress(sqlite3.OperationalError):  # "locked" while another opens it: set later
                    conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("BEGIN IMMEDIATE")
                for stmt in _SCHEMA:
                    conn.execute(stmt)
                conn.execute("COMMIT")
                self._schema_ready = True
        except BaseException:
            conn.close()
            raise
        return conn

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[Any]:
        with self._errors("writing object metadata"):
            conn = self._conns.get()
            conn.execute("BEGIN IMMEDIATE")  # the write lock: version numbers are read and taken atomically
            try:
                yield conn.execute
                conn.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise

    @contextlib.contextmanager
    def _reading(self) -> Iterator[Any]:
        with self._errors("reading objects"):
            yield self._conns.get().execute

    def close(self) -> None:
        self._conns.close()

    # ------------------------------------------------------------------------------------------ blob files

    def blob_path(self, sha256: str) -> Path:
        """Where the blob with this sha256 lives."""
        if not re.fullmatch(r"[0-9a-f]{64}", sha256 or ""):
            raise QueryError(f"not a sha256 hex digest: {sha256!r}")
        return self.blob_dir / sha256[:2] / sha256

    def _private_dir(self, path: Path) -> None:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        if path.stat().st_mode & 0o077:
            os.chmod(path, 0o700)

    def _write_blob(self, chunks: Iterator[bytes]) -> BlobInfo:
        with self._errors("writing object content"):
            self._private_dir(self.blob_dir)
            tmp_dir = self.blob_dir / "tmp"
            self._private_dir(tmp_dir)
            self._sweep(tmp_dir)
            fd, tmp = tempfile.mkstemp(dir=tmp_dir, prefix="part-")  # mode 0600
            try:
                digest, size = hashlib.sha256(), 0
                with os.fdopen(fd, "wb") as f:
                    for chunk in chunks:
                        f.write(chunk)
                        digest.update(chunk)
                        size += len(chunk)
                    f.flush()
                    os.fsync(f.fileno())
                sha = digest.hexdigest()
                final = self.blob_path(sha)
                self._private_dir(final.parent)
                if not (final.exists() and final.stat().st_size == size):  # else identical content is stored
                    self._place(tmp, final)
                if final.stat().st_size != size:
                    raise ObjectIntegrityError(f"blob {final} has {final.stat().st_size} bytes after writing "
                                               f"{size}")
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        return BlobInfo(sha, size, "file", spare=tmp)  # put() removes tmp once the metadata is published

    def _place(self, spare: str, final: Path) -> None:
        """Make ``final`` a link to the complete file ``spare`` (which stays), atomically."""
        link = spare + ".link"
        try:
            os.link(spare, link)
        except OSError:  # a file system without hard links: a copy, synced before it is renamed into place
            shutil.copyfile(spare, link)
            with open(link, "rb") as f:
                os.fsync(f.fileno())
        try:
            os.replace(link, final)  # atomic: the blob appears complete or not at all
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(link)
            raise
        _fsync_dir(final.parent)

    def _pin_content(self, ex, blob: BlobInfo | None) -> None:
        # Inside the write lock: a delete that removed this content after _write_blob found it cannot run now.
        if blob is not None and blob.spare is not None:
            final = self.blob_path(blob.sha256)
            if not final.exists():
                self._private_dir(final.parent)
                self._place(blob.spare, final)

    def _after_delete(self, shas: list[str]) -> None:
        if not shas:
            return
        # A write transaction of its own, so no save publishes between the check and the unlink (the deleting
        # transaction committed already: were it to fail after an unlink, its rows would name a missing file).
        with self._transaction() as ex:
            for sha in sorted(set(shas) - self._named(ex, shas, inline=False)):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.blob_path(sha))

    def _sweep(self, tmp_dir: Path) -> None:
        if self._swept:
            return
        self._swept = True
        cutoff = time.time() - _STALE_TMP_SECS
        for entry in os.scandir(tmp_dir):
            with contextlib.suppress(OSError):
                if entry.stat().st_mtime < cutoff:
                    os.unlink(entry.path)

    def _blob_chunks(self, sha256: str, size: int) -> Iterator[bytes]:
        path = self.blob_path(sha256)
        try:
            f = open(path, "rb")
        except FileNotFoundError:
            raise ObjectIntegrityError(f"the content file {path} is missing") from None
        with f:
            yield from iter_chunks(f, CHUNK_SIZE)

    def blob_count(self) -> int:
        if not self.blob_dir.is_dir():
            return 0
        return sum(1 for sub in self.blob_dir.iterdir() if sub.name != "tmp" and sub.is_dir()
                   for _ in sub.iterdir())


def _fsync_dir(path: Path) -> None:
    # The rename itself must survive a power loss, not only the file's bytes.
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
