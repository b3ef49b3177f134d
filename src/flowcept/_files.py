"""Files and folders flowcept creates are private to their owner: 0700 folders, 0600 files, whatever the umask.

Provenance holds arguments, outputs and settings; on a shared login node a home folder is often readable by every
user, so every path flowcept creates (store folder and file, blob area, JSONL buffer, spill, retained and rejects
files, log file) goes through these helpers. Existing paths keep their mode (the user may have widened it on
purpose); :func:`warn_if_shared` names the path and the ``chmod`` that makes it private.
"""

from __future__ import annotations

import logging
import os
import stat

logger = logging.getLogger("flowcept")

DIR_MODE = 0o700
FILE_MODE = 0o600


def make_private_dir(path: str | os.PathLike) -> str:
    """Create ``path`` and its missing parents as 0700 folders (existing ones are left as they are).

    Returns:
        The path, as a string.
    """
    path = os.fspath(path)
    missing = []
    head = os.path.abspath(path)
    while head and not os.path.isdir(head):
        missing.append(head)
        parent = os.path.dirname(head)
        if parent == head:
            break
        head = parent
    for folder in reversed(missing):
        try:
            os.mkdir(folder, DIR_MODE)
        except FileExistsError:
            continue  # another process made it first: its mode is its creator's business
        os.chmod(folder, DIR_MODE)  # the umask may have taken bits away (or the owner's own)
    return path


def open_private(path: str | os.PathLike, flags: int = os.O_WRONLY | os.O_APPEND | os.O_CREAT) -> int:
    """``os.open`` that creates a missing file as 0600 (and its missing folders as 0700); returns the fd.

    An existing file keeps its mode (see :func:`warn_if_shared`).
    """
    path = os.fspath(path)
    flags |= getattr(os, "O_CLOEXEC", 0)
    if not flags & os.O_CREAT:
        return os.open(path, flags)
    if not os.path.isdir(os.path.dirname(os.path.abspath(path))):
        make_private_dir(os.path.dirname(os.path.abspath(path)))
    for _ in range(10):
        try:
            fd = os.open(path, flags | os.O_EXCL, FILE_MODE)
        except FileExistsError:
            try:
                return os.open(path, flags & ~os.O_CREAT)
            except FileNotFoundError:
                continue  # deleted between the two opens: create it after all
        os.fchmod(fd, FILE_MODE)  # the umask may have taken the owner's own bits away
        return fd
    return os.open(path, flags, FILE_MODE)


def create_private_file(path: str | os.PathLike) -> str:
    """Make sure ``path`` exists, created as 0600 when missing (a store file before its library opens it, so
    the library's own files beside it, such as SQLite's ``-wal`` and ``-shm``, take the same mode)."""
    os.close(open_private(path, os.O_WRONLY | os.O_CREAT))
    return os.fspath(path)


def prepare_store_file(path: str | os.PathLike, warn: bool = True) -> None:
    """Before a store library opens ``path``: create it privately when missing, else (with ``warn``) warn when it
    is shared."""
    if os.path.exists(path):
        if warn:
            warn_if_shared(path)
    else:
        create_private_file(path)


def open_private_file(path: str | os.PathLike, mode: str = "ab"):
    """A Python file object over :func:`open_private` (``mode``: ``"ab"``, ``"wb"`` or ``"w"`` text)."""
    flags = os.O_WRONLY | os.O_CREAT
    if "a" in mode:
        flags |= os.O_APPEND
    elif "w" in mode:
        flags |= os.O_TRUNC
    return os.fdopen(open_private(path, flags), mode, **({} if "b" in mode else {"encoding": "utf-8"}))


def warn_if_shared(path: str | os.PathLike) -> bool:
    """Log a warning naming ``path`` and the ``chmod`` to run when other users can read or write it.

    Returns:
        True when the path is shared that way.
    """
    path = os.path.abspath(os.fspath(path))
    try:
        st = os.stat(path)
    except OSError:
        return False
    if not st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        return False
    private = DIR_MODE if stat.S_ISDIR(st.st_mode) else FILE_MODE
    logger.warning("flowcept: %s can be read by other users (mode %s) and provenance may hold secrets; make it "
                   "private with: chmod %o %s", path, oct(stat.S_IMODE(st.st_mode)), private, path)
    return True
