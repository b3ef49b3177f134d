"""Turns raw captured records into JSON-clean dicts, once, on the flusher thread.

Rules for values JSON cannot hold (the documented ``replace_non_json_serializable`` behaviour): an object with a
``to_flowcept_dict()`` or ``to_dict()`` method becomes its result; an instance of a registered class (see
:func:`register_dict_class`; ``argparse.Namespace`` is registered) becomes its ``__dict__``; sets and tuples become
lists; bytes become base64 text; numpy scalars and arrays become numbers and lists; anything else becomes the string
``<ClassName>_instance_id_<id>``. Inputs and outputs are snapshotted when captured (:func:`snapshot`), so later
changes by the user's program do not alter what was recorded.
"""

from __future__ import annotations

import base64
from typing import Any

import orjson

from flowcept._internal_errors import report_internal_error
from flowcept._runtime import RUNTIME

_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY


def register_dict_class(cls: type) -> type:
    """Capture instances of ``cls`` through their ``__dict__``. Usable as a class decorator."""
    RUNTIME.dict_classes.add(cls)
    return cls


def placeholder(obj: Any) -> str:
    """The stand-in string for an object that cannot be captured as data."""
    return f"{type(obj).__name__}_instance_id_{id(obj)}"


def _default(obj: Any) -> Any:
    cls = type(obj)
    for method in ("to_flowcept_dict", "to_dict"):
        fn = getattr(cls, method, None)
        if fn is not None and callable(fn):
            try:
                return fn(obj)
            except Exception as exc:  # noqa: BLE001 - a user's to_dict must not break capture
                report_internal_error(f"{cls.__name__}.{method}()", exc)
                return placeholder(obj)
    dict_classes = RUNTIME.dict_classes
    if cls in dict_classes or any(issubclass(cls, c) for c in dict_classes):
        return dict(vars(obj))
    if isinstance(obj, (set, frozenset)):
        return list(obj)
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(obj)).decode("ascii")
    if hasattr(obj, "tolist") and hasattr(obj, "dtype"):  # numpy arrays of object dtype, numpy scalars
        try:
            return obj.tolist()
        except Exception:  # noqa: BLE001
            pass
    return placeholder(obj)


IMMUTABLE_TYPES = _IMMUTABLE = frozenset({int, float, str, bool, type(None), bytes, complex})
ARRAY_INLINE_MAX = 1000  # arrays and tensors up to this many elements are stored as lists; larger ones summarized


def snapshot(value: Any) -> Any:
    """``value`` as it is now, safe from later mutation: containers are copied (recursively), arrays and tensors
    become lists (or, past :data:`ARRAY_INLINE_MAX` elements, a ``{type, shape, dtype}`` summary). Other objects
    are kept as they are and converted when their batch is encoded. Never raises (a cyclic container, or an
    object whose attribute lookup fails, becomes its placeholder string)."""
    try:
        return _snapshot(value)
    except Exception:  # noqa: BLE001 - capture must never break the user's call
        report_internal_error("snapshot of a value", None)
        return placeholder(value)


def _snapshot(value: Any) -> Any:
    cls = type(value)
    if cls in _IMMUTABLE:
        return value
    if cls is dict:
        return {k: _snapshot(v) for k, v in value.items()}
    if cls is list or cls is tuple or cls is set or cls is frozenset:
        return [_snapshot(v) for v in value]
    if hasattr(value, "dtype") and hasattr(value, "shape"):
        return _array_snapshot(value)
    return value


def snapshot_values(values: dict) -> dict:
    """Snapshot each value of a dict the caller owns, in place (see :func:`snapshot`); returns it."""
    immutable = _IMMUTABLE
    for key, value in values.items():
        if type(value) not in immutable:
            values[key] = snapshot(value)
    return values


def _array_snapshot(array: Any) -> Any:
    try:
        device = getattr(array, "device", None)
        if device is not None and str(device) != "cpu" and hasattr(array, "detach"):
            # An accelerator tensor: reading it here would wait for the device; keep a copy, read it on the flusher.
            if array.numel() <= ARRAY_INLINE_MAX:
                return array.detach().clone()
            return {"type": type(array).__name__, "shape": list(array.shape), "dtype": str(array.dtype)}
        if tuple(array.shape) == ():
            return array.item()
        size = array.size if isinstance(array.size, int) else array.numel()
        if size <= ARRAY_INLINE_MAX:
            return array.tolist()
        return {"type": type(array).__name__, "shape": list(array.shape), "dtype": str(array.dtype)}
    except Exception:  # noqa: BLE001 - an exotic array type: keep a stand-in rather than fail the capture
        return placeholder(array)


def dumps(value: Any) -> bytes:
    """Compact JSON bytes of ``value``, converting what JSON cannot hold."""
    try:
        return orjson.dumps(value, default=_default, option=_OPTIONS)
    except (TypeError, orjson.JSONEncodeError):
        return orjson.dumps(_walk(value), default=_default, option=_OPTIONS)



def sanitize(value: Any) -> Any:
    """A JSON-clean copy of ``value`` (dicts with string keys, lists, str, numbers, bools, None)."""
    return orjson.loads(dumps(value))


def _walk(value: Any) -> Any:
    # Slow path for what orjson refuses outright: integers beyond 64 bits, deeply nested or cyclic data.
    if isinstance(value, dict):
        return {str(k): _walk(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_walk(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool) and not -(2 ** 63) <= value < 2 ** 64:
        return str(value)
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    try:
        return orjson.loads(orjson.dumps(value, default=_default, option=_OPTIONS))
    except Exception:  # noqa: BLE001
        return placeholder(value)
