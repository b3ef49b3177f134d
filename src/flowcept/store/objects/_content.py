"""What an object's content can be given as (bytes, a path, a binary file, a pickled Python object) and how it is
read in bounded chunks."""

from __future__ import annotations

import contextlib
import io
import os
import pickle as _pickle
import tempfile
from typing import Any, BinaryIO, Iterator

#: Content moves in pieces of this size: a 2 GiB object never needs more than a few of them in memory.
CHUNK_SIZE = 4 * 1024 * 1024
#: Pickles and torch state_dicts larger than this are serialized to a temporary file rather than to memory.
SPOOL_BYTES = 64 * 1024 * 1024


def spooled() -> "tempfile.SpooledTemporaryFile":
    """A binary scratch file that stays in memory up to :data:`SPOOL_BYTES`, then moves to disk."""
    return tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)


@contextlib.contextmanager
def open_source(obj: Any, use_pickle: bool) -> Iterator[BinaryIO]:
    """A binary reader over the content of ``obj``.

    Args:
        obj: ``bytes``/``bytearray``/``memoryview``, a path (``os.PathLike``; a file is streamed), a binary file
            object (read from its current position; not closed), or any picklable object with ``use_pickle``.
        use_pickle: pickle ``obj`` (through :func:`spooled`: a big array is not copied into memory again).

    Raises:
        TypeError: ``obj`` is none of the above (a ``str`` is refused: pass ``pathlib.Path`` for a file, bytes for
            text, or ``pickle=True``).
    """
    if use_pickle:
        with spooled() as spool:
            _pickle.dump(obj, spool, protocol=_pickle.HIGHEST_PROTOCOL)
            spool.seek(0)
            yield spool
    elif isinstance(obj, (bytes, bytearray, memoryview)):
        yield io.BytesIO(obj)
    elif isinstance(obj, os.PathLike):
        with open(obj, "rb") as f:
            yield f
    elif callable(getattr(obj, "read", None)):
        yield obj
    else:
        kind = "a str (pass pathlib.Path(...) for a file, or bytes)" if isinstance(obj, str) else type(obj).__name__
        raise TypeError(f"cannot store {kind} as object content: pass bytes, a pathlib.Path, a binary file object, "
                        "or pickle=True for a Python object")


def read_exact(reader: BinaryIO, n: int) -> bytes:
    """Up to ``n`` bytes: fewer only at the end of the stream (a short ``read`` is retried)."""
    first = reader.read(n)
    _check_bytes(first)
    if not first or len(first) == n:
        return bytes(first)
    parts, got = [first], len(first)
    while got < n:
        more = reader.read(n - got)
        _check_bytes(more)
        if not more:
            break
        parts.append(more)
        got += len(more)
    return b"".join(parts)


def iter_chunks(reader: BinaryIO, size: int = CHUNK_SIZE) -> Iterator[bytes]:
    """The rest of ``reader`` in pieces of ``size`` bytes (the last one shorter)."""
    while True:
        chunk = read_exact(reader, size)
        if not chunk:
            return
        yield chunk
        if len(chunk) < size:
            return


def _check_bytes(value: Any) -> None:
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise TypeError(f"object content must be read as bytes; the file object returned {type(value).__name__} "
                        "(open it in binary mode)")
