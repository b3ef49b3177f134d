"""Turns raw captured records into JSON-clean dicts, once, on the flusher thread.

Rules for values JSON cannot hold (the documented ``replace_non_json_serializable`` behaviour): an object with a
``to_flowcept_dict()`` or ``to_dict()`` method becomes its result; an instance of a registered class (see
:func:`register_dict_class`; ``argparse.Namespace`` is registered) becomes its ``__dict__``; sets and tuples become
lists; bytes become base64 text; numpy scalars and arrays become numbers and lists; anything else becomes the string
``<ClassName>_instance_id_<id>``. Inputs and outputs are snapshotted when captured (:func:`snapshot`), so later
changes by the user's program do not alter what was recorded.

Hostile input is kept as data, never silently lost, and each case counts a capture warning
(:func:`flowcept._internal_errors.capture_warning_count`):

* **Keys that collide once converted to strings**: string keys keep their names; a non-string key becomes its
  text (``1`` -> ``"1"``, ``True`` -> ``"true"``, ``None`` -> ``"null"``), and when that text is taken the value is
  stored under ``"<text> (<type>)"`` instead: ``{1: "int", "1": "str"}`` -> ``{"1": "str", "1 (int)": "int"}``.
* **NaN and infinities** (JSON has none) are stored as the strings ``"NaN"``, ``"Infinity"`` and ``"-Infinity"``.
* **Large containers**: a list, tuple, set or dict with more than ``instrumentation.max_snapshot_items`` items is
  not copied; it is stored as ``{"type": <class name>, "length": <items>, "head": <its first 10 items>}``.
* **A key changed after it was inserted** (a mutable object whose hash follows its fields): the dict is kept, the key
  stored as its text.
* **Integers beyond 64 bits** (JSON readers lose their digits) are stored as their decimal text, or past Python's
  limit on decimal conversion (``sys.set_int_max_str_digits``) as their hexadecimal text ``0x...``.
* **Strings with lone surrogates** (file names that are not UTF-8, as ``os.listdir`` returns them) are stored with
  each surrogate written as its escape: ``"file\\udcff.txt"``.
"""

from __future__ import annotations

import base64
import gc
from itertools import chain, islice, repeat
from typing import Any

import orjson

from flowcept._internal_errors import report_capture_warning, report_internal_error
from flowcept._runtime import RUNTIME

# No OPT_NON_STR_KEYS: a dict with other keys makes orjson refuse the record, which then takes the slow path
# (_walk), where colliding keys keep both values.
_OPTIONS = orjson.OPT_SERIALIZE_NUMPY
NON_FINITE = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}
SUMMARY_HEAD = 10  # items kept in the summary of an oversized container


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
                converted = fn(obj)
            except Exception as exc:  # noqa: BLE001 - a user's to_dict must not break capture
                report_internal_error(f"{cls.__name__}.{method}()", exc)
                return placeholder(obj)
            if not gc.is_tracked(obj):
                RUNTIME.untracked_conversions += 1  # keys redaction could not see (flowcept.redact._clean)
            # Converted on the flusher, never snapshotted: its keys and floats follow the rules here.
            return _walk(converted)
    dict_classes = RUNTIME.dict_classes
    if cls in dict_classes or any(issubclass(cls, c) for c in dict_classes):
        return _walk(dict(vars(obj)))
    if isinstance(obj, (set, frozenset)):
        return list(obj)
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(obj)).decode("ascii")
    if hasattr(obj, "tolist") and hasattr(obj, "dtype"):  # numpy arrays of object dtype, numpy scalars
        try:
            converted = obj.tolist()
            if type(converted) in (list, dict) and not gc.is_tracked(obj):
                RUNTIME.untracked_conversions += 1
            return converted
        except Exception:  # noqa: BLE001
            pass
    return placeholder(obj)


#: Types captured as they are, without a snapshot. Floats are not among them: NaN and infinities are encoded.
IMMUTABLE_TYPES = _IMMUTABLE = frozenset({int, str, bool, type(None), bytes, complex})
ARRAY_INLINE_MAX = 1000  # arrays and tensors up to this many elements are stored as lists; larger ones summarized


def snapshot_expression(name: str) -> str:
    """Source of the expression generated wrappers use for the captured value of the local ``name`` (needs the
    globals ``_fc_immutable`` = :data:`IMMUTABLE_TYPES` and ``_fc_snapshot`` = :func:`snapshot`): what
    :func:`snapshot` gives, with its common cases (immutable values, finite floats) inline."""
    return (f"{name} if type({name}) in _fc_immutable or (type({name}) is float and {name} - {name} == 0.0) "
            f"else _fc_snapshot({name})")


def non_finite(value: float) -> str:
    """The stored form of a NaN or infinite float (counted as a capture warning)."""
    report_capture_warning("a float value", "NaN or infinity stored as the string 'NaN', 'Infinity' or '-Infinity'")
    return NON_FINITE[repr(value)]


def _summary(value: Any) -> dict:
    """The stored form of a container over ``instrumentation.max_snapshot_items`` (counted as a capture warning)."""
    report_capture_warning("a large container", f"a {type(value).__name__} of {len(value)} items stored as a summary "
                           f"(over instrumentation.max_snapshot_items = {RUNTIME.max_snapshot_items})")
    if type(value) is dict:
        head: Any = {k: _snapshot(v) for k, v in islice(value.items(), SUMMARY_HEAD)}
    else:
        head = [_snapshot(v) for v in islice(value, SUMMARY_HEAD)]
    return {"type": type(value).__name__, "length": len(value), "head": head}


def snapshot(value: Any) -> Any:
    """``value`` as it is now, safe from later mutation: containers are copied (recursively), arrays and tensors
    become lists (or, past :data:`ARRAY_INLINE_MAX` elements, a ``{type, shape, dtype}`` summary). Other objects
    are kept as they are and converted when their batch is encoded. Never raises: a value that cannot be copied (a
    cyclic container, an object whose attribute lookup fails) becomes its placeholder string; in a dict, that value
    alone."""
    if type(value) is dict and len(value) <= RUNTIME.max_snapshot_items:  # the common case
        return snapshot_values(value.copy())
    return _snapshot_or_placeholder(value)


def _snapshot_or_placeholder(value: Any) -> Any:
    try:
        return _snapshot(value)
    except Exception:  # noqa: BLE001 - capture must never break the user's call
        report_internal_error("snapshot of a value", None)
        return placeholder(value)


def _snapshot(value: Any) -> Any:
    cls = type(value)
    if cls in _IMMUTABLE:
        return value
    if cls is float:
        return value if value - value == 0.0 else non_finite(value)
    if cls is dict:
        if len(value) > RUNTIME.max_snapshot_items:
            return _summary(value)
        # Immutable values and finite floats inline: no call per number or string.
        return {k: v if type(v) in _IMMUTABLE or (type(v) is float and v - v == 0.0) else _snapshot(v)
                for k, v in value.items()}
    if cls is list or cls is tuple or cls is set or cls is frozenset:
        if len(value) > RUNTIME.max_snapshot_items:
            return _summary(value)
        return [v if type(v) in _IMMUTABLE or (type(v) is float and v - v == 0.0) else _snapshot(v) for v in value]
    if hasattr(value, "dtype") and hasattr(value, "shape"):
        return _array_snapshot(value)
    return value


def snapshot_values(values: dict) -> Any:
    """The values of a dict the caller owns, each snapshotted (see :func:`snapshot`): the dict itself when all are
    numbers and strings (no copy made), else a new dict. Never raises: a value that cannot be copied becomes its
    placeholder string, and a dict whose keys can no longer be hashed (a key object changed after insertion) its
    own."""
    for value in values.values():  # values, not keys: a key's hash may have changed since it was inserted
        if type(value) not in _IMMUTABLE and not (type(value) is float and value - value == 0.0):
            break
    else:
        return values
    try:
        return {k: v if type(v) in _IMMUTABLE or (type(v) is float and v - v == 0.0) else _snapshot_or_placeholder(v)
                for k, v in values.items()}
    except Exception:  # noqa: BLE001 - capture must never break the user's call
        report_internal_error("snapshot of a value", None)
        return placeholder(values)


def _array_snapshot(array: Any) -> Any:
    try:
        device = getattr(array, "device", None)
        if device is not None and str(device) != "cpu" and hasattr(array, "detach"):
            # An accelerator tensor: reading it here would wait for the device; keep a copy, read it on the flusher.
            if array.numel() <= ARRAY_INLINE_MAX:
                return array.detach().clone()
            return {"type": type(array).__name__, "shape": list(array.shape), "dtype": str(array.dtype)}
        if tuple(array.shape) == ():
            return _snapshot(array.item())
        size = array.size if isinstance(array.size, int) else array.numel()
        if size <= ARRAY_INLINE_MAX:
            values = array.tolist()
            # Float arrays may hold NaN or infinities: one pass over at most ARRAY_INLINE_MAX values.
            return _snapshot(values) if "float" in str(array.dtype) else values
        return {"type": type(array).__name__, "shape": list(array.shape), "dtype": str(array.dtype)}
    except Exception:  # noqa: BLE001 - an exotic array type: keep a stand-in rather than fail the capture
        return placeholder(array)


def dumps(value: Any) -> bytes:
    """Compact JSON bytes of ``value``, converting what JSON cannot hold."""
    try:
        return orjson.dumps(value, default=_default, option=_OPTIONS)
    except (TypeError, orjson.JSONEncodeError):
        return orjson.dumps(_walk(value), default=_default, option=_OPTIONS)


def dumps_array(records: list) -> bytes:
    """``records`` as one JSON array: one encoder call, or, when a record needs the slow path (non-string keys,
    huge integers), record by record so only those records take it."""
    try:
        return orjson.dumps(records, default=_default, option=_OPTIONS)
    except (TypeError, orjson.JSONEncodeError):
        return b"[" + b",".join(dumps(record) for record in records) + b"]"




#: Put between the records of a batch encoded in one call (:func:`dumps_each`): orjson writes a fragment as it is,
#: and never writes a raw newline itself (it escapes one in a string), so ``,<newlines>,`` can only be this
#: separator. Eight newlines rather than one: the split skips further at each step (about 1,150 instead of 1,660
#: instructions per record of 400 bytes).
_SEPARATOR_TEXT = b"\n" * 8
_SEPARATOR = orjson.Fragment(_SEPARATOR_TEXT)
_SPLIT_AT = b"," + _SEPARATOR_TEXT + b","


def dumps_each(records: list) -> list[bytes]:
    """Each of ``records`` as compact JSON bytes; when one needs the slow path (non-string keys, huge integers),
    record by record.

    The batch is one encoder call, the records separated by a fragment of newlines, then split there: no
    interpreted step per record, and one output buffer. (A call per record cost more: 4,920 against 3,558
    instructions per lightweight record, docs/performance.md.)"""
    if not records:
        return []
    try:
        encoded = orjson.dumps(list(chain.from_iterable(zip(records, repeat(_SEPARATOR)))), _default, _OPTIONS)
    except (TypeError, orjson.JSONEncodeError):
        return [dumps(record) for record in records]
    # b'[' first record ',<sep>,' second record ... ',<sep>]': split, then the first and last parts trimmed.
    parts = encoded.split(_SPLIT_AT)
    if len(parts) != len(records):  # a record holding an orjson.Fragment of its own with that text
        return [dumps(record) for record in records]
    parts[0] = parts[0][1:]
    parts[-1] = parts[-1][:-len(_SEPARATOR_TEXT) - 2]
    return parts


def sanitize(value: Any) -> Any:
    """A JSON-clean copy of ``value`` (dicts with string keys, lists, str, numbers, bools, None)."""
    return orjson.loads(dumps(value))


def big_int_text(value: int) -> str:
    """The stored form of an integer beyond 64 bits (counted as a capture warning): its decimal text, or its
    hexadecimal text when it has more digits than Python converts to decimal."""
    try:
        text = str(value)
    except ValueError:  # "Exceeds the limit (4300 digits) for integer string conversion"
        text = hex(value)
    report_capture_warning("a large integer", f"an integer of {value.bit_length()} bits stored as text")
    return text


def valid_text(text: str) -> str:
    """``text`` itself, or, when it holds lone surrogates (a file name ``os.listdir`` decoded from bytes that are not
    UTF-8, ``"\\udcff"``), the same text with each of them written as its escape (counted as a capture warning):
    JSON text is UTF-8, which cannot hold them."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        report_capture_warning("a string", "lone surrogates in a string stored as their escapes (\\udcff)")
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def key_text(key: Any) -> str:
    """The string a non-string dict key is stored under (before collisions are resolved)."""
    if key is None or isinstance(key, bool):
        return "null" if key is None else ("true" if key else "false")
    if isinstance(key, float) and key - key != 0.0:
        return NON_FINITE[repr(key)]
    if isinstance(key, int) and not -(2 ** 63) <= key < 2 ** 64:
        return big_int_text(key)
    return str(key)


def string_keys(d: dict) -> dict:
    """``d`` with string keys only; a converted key whose text is taken keeps its value under ``"<text> (<type>)"``
    (counted as a capture warning)."""
    out = {k: v for k, v in d.items() if type(k) is str}
    if len(out) == len(d):
        return out
    for k, v in d.items():
        if type(k) is str:
            continue
        text = key_text(k)
        if text in out:
            base = text = f"{text} ({type(k).__name__})"
            n = 2
            while text in out:
                text = f"{base} #{n}"
                n += 1
            report_capture_warning("dict keys", f"key {k!r} collided with another once made a string; stored "
                                   f"as {text!r}")
        out[text] = v
    return out


def _walk(value: Any) -> Any:
    # Slow path for what orjson refuses outright (non-string keys, integers beyond 64 bits, deeply nested or cyclic
    # data) and for values converted on the flusher (to_dict() results), whose floats were never snapshotted.
    if isinstance(value, dict):
        return {valid_text(k): _walk(v) for k, v in string_keys(value).items()}
    if isinstance(value, (list, tuple)):
        return [_walk(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool) and not -(2 ** 63) <= value < 2 ** 64:
        return big_int_text(value)
    if isinstance(value, float):
        return value if value - value == 0.0 else non_finite(value)
    if isinstance(value, str):
        return valid_text(value)
    if value is None or isinstance(value, (int, bool)):
        return value
    try:
        return orjson.loads(orjson.dumps(value, default=_default, option=_OPTIONS))
    except Exception:  # noqa: BLE001
        return placeholder(value)
