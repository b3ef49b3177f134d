"""Redaction by name: values whose key looks like a secret are stored as ``"REDACTED"``.

Where it runs::

    decoration / FlowceptTask(...)      caller's thread      options only: redact=False | [names], redact_allow=[...]
             │                                                (a function without options adds nothing to its records)
             ▼
    record ──append──▶ buffer ──flusher thread──▶ redact_records(batch) ──▶ encode ──▶ JSONL file, transport, store
                                                  keys at any depth under used, generated, custom_metadata,
                                                  extra_metadata (workflow_args are the workflow's ``used``)

The caller's thread never looks at keys: every decision about a key is taken once per distinct key (cached) on the
flusher thread, so a call costs the same whether redaction is on or off.

How a key matches (the rule the docs state):

1. The key is split into words: at ``_ - . space`` and any other non-alphanumeric character, at camelCase
   boundaries (``apiKey`` -> ``api key``, ``XAuthToken`` -> ``x auth token``) and before trailing digits
   (``password2`` -> ``password 2``); words are lower-cased and trailing all-digit words dropped.
2. A pattern without wildcards (``api_key``) is split the same way; it matches when the key's words **end with**
   the pattern's words: ``api_key`` matches ``api_key``, ``openai_api_key``, ``OPENAI_API_KEY``, ``apiKey``,
   ``x-api-key``; ``token`` matches ``token``, ``access_token``, ``x_auth_token``, ``githubToken`` but not
   ``max_tokens``, ``token_count``, ``token_ids`` or ``tokenizer``.
3. A pattern with ``*`` or ``?`` is a glob matched against the whole key's words joined by ``_``:
   ``*token*`` matches ``token_count`` too; ``ssn`` (no wildcard) would match ``user_ssn``.
4. A key matching a ``redact_allow`` pattern (same rules) is never redacted.

A matching key's whole value (a nested dict or list included) becomes ``"REDACTED"``; a null value stays null.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import gc
import re
from itertools import chain, compress, repeat
from typing import Any, Iterable, Sequence

REDACTED = "REDACTED"
#: The record field holding how many values of the record were redacted.
COUNT_FIELD = "redacted"
#: Private record key carrying a decorator's or task's own options; the flusher removes it before encoding.
OPTIONS_KEY = "_fc_redact"
#: Record fields whose keys are checked, at any depth.
FIELDS = ("used", "generated", "custom_metadata", "extra_metadata")

_SCALARS = frozenset({int, float, str, bool, type(None), bytes, complex})
_CAMEL_1 = re.compile(r"([A-Z]+)([A-Z][a-z])")
_CAMEL_2 = re.compile(r"([a-z])([A-Z0-9])")
_LETTER_DIGIT = re.compile(r"([A-Za-z])([0-9]+)$")
_NOT_ALNUM = re.compile(r"[^a-z0-9]+")
_CACHE_MAX = 100_000  # distinct keys remembered per rule set (keys that are ids would otherwise grow it forever)


def words(key: Any) -> tuple[str, ...]:
    """The lower-case words of a key (see the module docstring, step 1)."""
    text = key if isinstance(key, str) else str(key)
    text = _LETTER_DIGIT.sub(r"\1_\2", _CAMEL_2.sub(r"\1_\2", _CAMEL_1.sub(r"\1_\2", text)))
    parts = [p for p in _NOT_ALNUM.split(text.lower()) if p]
    while parts and parts[-1].isdigit():
        parts.pop()
    return tuple(parts)


class _Pattern:
    __slots__ = ("text", "suffix", "glob")

    def __init__(self, text: str):
        self.text = text
        if "*" in text or "?" in text:
            # Wildcards stay; the rest is normalized as keys are ("API-Key*" -> "api_key*").
            self.glob = _glob_of(text)
            self.suffix = None
        else:
            self.suffix = words(text)
            self.glob = None
            if not self.suffix:
                raise ValueError(f"redaction pattern {text!r} has no letters or digits")

    def match(self, key_words: tuple[str, ...], joined: str) -> bool:
        if self.suffix is not None:
            n = len(self.suffix)
            return len(key_words) >= n and key_words[-n:] == self.suffix
        return fnmatch.fnmatchcase(joined, self.glob)


def _glob_of(text: str) -> str:
    """A glob pattern normalized like keys: words joined by ``_``, wildcards kept in place."""
    out = []
    for token in re.split(r"([*?])", text):
        if token in ("*", "?"):
            out.append(token)
        elif token:
            lead = "_" if token[0] in "_-. " and out else ""
            trail = "_" if token[-1] in "_-. " else ""
            out.append(lead + "_".join(words(token)) + trail)
    return "".join(out)


class Rules:
    """A compiled set of redaction patterns with an allow list; decides each distinct key once.

    Args:
        keys: patterns whose matching keys are redacted.
        allow: patterns whose matching keys are never redacted.

    Raises:
        ValueError: a pattern with no letters or digits.
    """

    def __init__(self, keys: Iterable[str], allow: Iterable[str] = ()):
        self.keys = tuple(dict.fromkeys(str(k) for k in keys))
        self.allow = tuple(dict.fromkeys(str(k) for k in allow))
        self._match = [_Pattern(k) for k in self.keys]
        self._allow = [_Pattern(k) for k in self.allow]
        # Keys decided safe / secret. `safe` is a set so that a whole dict is checked in C (set.issuperset).
        self.safe: set = set()
        self._secret: set = set()
        self._derived: dict = {}

    def is_secret(self, key: Any) -> bool:
        """Whether values under ``key`` are redacted by these rules."""
        if key in self.safe:
            return False
        if key in self._secret:
            return True
        key_words = words(key)
        joined = "_".join(key_words)
        secret = any(p.match(key_words, joined) for p in self._match) and \
            not any(p.match(key_words, joined) for p in self._allow)
        if len(self.safe) + len(self._secret) >= _CACHE_MAX:
            self.safe.clear()
            self._secret.clear()
        (self._secret if secret else self.safe).add(key)
        return secret

    def with_options(self, options: "RedactOptions") -> "Rules | None":
        """These rules adjusted by a decorator's or task's options (None: nothing is redacted), cached."""
        derived = self._derived.get(options)
        if derived is None and options not in self._derived:
            if options.off:
                derived = None
            else:
                derived = Rules(self.keys + options.keys, self.allow + options.allow)
            self._derived[options] = derived
        return derived

    def __repr__(self) -> str:
        return f"Rules(keys={list(self.keys)!r}, allow={list(self.allow)!r})"


class RedactOptions:
    """The ``redact`` / ``redact_allow`` options of one decorator or task, validated when it is declared.

    ``redact=False`` stores this function's values as they are; ``redact=[...]`` adds patterns (and redacts with
    them even where the settings turn redaction off); ``redact_allow=[...]`` exempts keys.
    """

    __slots__ = ("off", "keys", "allow", "force")

    def __init__(self, redact: bool | Sequence[str] | str | None = None,
                 redact_allow: Sequence[str] | str | None = None):
        self.off = redact is False
        self.force = isinstance(redact, (list, tuple, str))
        self.keys = _names("redact", redact) if self.force else ()
        self.allow = _names("redact_allow", redact_allow) if redact_allow is not None else ()
        if not (redact is None or isinstance(redact, bool) or self.force):
            raise TypeError(f"redact= takes True, False or a list of key patterns, got {type(redact).__name__}")
        for text in self.keys + self.allow:
            _Pattern(text)  # fail at declaration, not on the flusher thread

    def _identity(self) -> tuple:
        return self.off, self.force, self.keys, self.allow

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RedactOptions) and self._identity() == other._identity()

    def __hash__(self) -> int:
        return hash(self._identity())

    def __repr__(self) -> str:
        return f"RedactOptions(off={self.off}, keys={list(self.keys)}, allow={list(self.allow)})"


def _names(option: str, value: Sequence[str] | str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise TypeError(f"{option}= takes a list of key patterns (strings), got {value!r}")
    return tuple(value)


def options_for(redact: bool | Sequence[str] | str | None, redact_allow: Sequence[str] | str | None) -> \
        RedactOptions | None:
    """The options object to put on each record of a decorator or task under :data:`OPTIONS_KEY`, or None when
    the settings decide alone (the common case: records then carry nothing extra).

    Raises:
        TypeError: ``redact`` is not a bool or a list of strings; ``redact_allow`` is not a list of strings.
        ValueError: a pattern has no letters or digits.
    """
    if (redact is None or redact is True) and not redact_allow:
        return None
    return RedactOptions(redact, redact_allow)


class Redactor:
    """The flusher's redaction step for one pipeline, built from the settings when the pipeline starts.

    Args:
        enabled: ``project.redact``; when false only records whose decorator or task passed ``redact=[...]``
            are redacted (with those patterns alone).
        keys, allow: ``project.redact_keys`` and ``project.redact_allow``.
    """

    def __init__(self, enabled: bool, keys: Iterable[str], allow: Iterable[str] = ()):
        self.enabled = enabled
        self.rules = Rules(keys, allow) if enabled else Rules((), allow)

    @classmethod
    def from_settings(cls, project) -> "Redactor":
        """The redactor ``project.redact``, ``project.redact_keys`` and ``project.redact_allow`` describe.

        Raises:
            ConfigError: a pattern with no letters or digits (the error names the key).
        """
        for key, patterns in (("project.redact_keys", project.redact_keys),
                              ("project.redact_allow", project.redact_allow)):
            for text in patterns:
                try:
                    _Pattern(str(text))
                except ValueError as exc:
                    from flowcept.errors import ConfigError

                    raise ConfigError(f"{exc}; give words such as `password` or a glob such as `*token*`",
                                      key=key) from None
        return cls(project.redact, project.redact_keys, project.redact_allow)

    def __call__(self, records: list, thorough: bool = False) -> int:
        """Redact a batch: records with something to redact are replaced in ``records`` by changed copies (the
        dicts the caller captured are never modified). Runs on the flusher thread.

        Args:
            thorough: look inside every value, objects included, instead of passing at once a batch whose dicts
                hold only atomic values (for a batch whose encoding converted an object that check let through,
                see :func:`_clean`).

        Returns:
            How many values were replaced.
        """
        return redact_records(records, self.rules, self.enabled, thorough)


def redacted_copy(record: dict) -> dict:
    """A copy of one record as it will be stored, by the running pipeline's rules (else the settings'): for
    in-process consumers such as an agent's history, and for writes that bypass the pipeline (object metadata),
    which must not hold what the store does not."""
    from flowcept.context import current_scope

    scope = current_scope()
    redactor = getattr(getattr(scope, "buffer", None), "redactor", None)
    if redactor is None:
        from flowcept.settings import get_settings

        redactor = Redactor.from_settings(get_settings().project)
    batch = [dict(record)]
    redactor(batch, thorough=True)  # written or shown without the buffer's encoding: no quick check
    return batch[0]


def redacted_metadata(custom_metadata: Any) -> Any:
    """``custom_metadata`` with secret-looking keys redacted (see :func:`redacted_copy`), for stores written
    directly."""
    if not isinstance(custom_metadata, dict):
        return custom_metadata
    return redacted_copy({"custom_metadata": custom_metadata})["custom_metadata"]


def redact_records(records: list, rules: Rules, enabled: bool = True, thorough: bool = False) -> int:
    """See :meth:`Redactor.__call__`; ``enabled`` false applies only the records' own ``redact=[...]`` lists."""
    try:
        has_options = any(map(dict.__contains__, records, repeat(OPTIONS_KEY)))
        # The common case, decided for the whole batch with C-level iteration (no Python code per record).
        if not has_options and (not enabled or (not thorough and _clean(records, rules))):
            return 0
    except TypeError:
        pass  # a record that is not a dict: look at each one
    total = 0
    for i, record in enumerate(records):
        if type(record) is not dict:
            continue
        options = record.get(OPTIONS_KEY)
        if options is not None:
            record = records[i] = {k: v for k, v in record.items() if k != OPTIONS_KEY}
            record_rules = rules.with_options(options) if enabled or options.force else None
        elif enabled:
            record_rules = rules
        else:
            continue
        if record_rules is None:
            continue
        changed = None
        for name in FIELDS:
            value = record.get(name)
            if value is None:
                continue
            try:
                new, n = _redact(value, record_rules)
            except Exception as exc:  # noqa: BLE001 - fail closed: a field we cannot inspect is not stored
                from flowcept._internal_errors import report_internal_error

                report_internal_error(f"redacting {name}", exc)
                new, n = REDACTED, 1
            if new is not value:
                if changed is None:
                    changed = dict(record)
                changed[name] = new
                if n:
                    total += n
                    changed[COUNT_FIELD] = changed.get(COUNT_FIELD, 0) + n
        if changed is not None:
            records[i] = changed
    return total


_CONTAINERS = _SCALARS | {dict, list, tuple}
_DICT = frozenset({dict})
_SEQUENCES = frozenset({list, tuple})
_COMMON = frozenset({"used", "generated"})
_MAX_LEVELS = 256


def _keyless(cls: type) -> bool:
    """Whether the encoder turns instances of ``cls`` into something without keys: arrays and tensors (``dtype``
    and ``shape``) and objects it stores as their placeholder string (no ``to_dict()``, not a dataclass, not a
    registered class, not a container subclass). Those need no look inside."""
    if hasattr(cls, "dtype") and hasattr(cls, "shape"):
        return True
    if issubclass(cls, (dict, list, tuple, set, frozenset)) or dataclasses.is_dataclass(cls):
        return False
    if callable(getattr(cls, "to_flowcept_dict", None)) or callable(getattr(cls, "to_dict", None)):
        return False
    from flowcept._runtime import RUNTIME

    return not any(issubclass(cls, registered) for registered in RUNTIME.dict_classes)


def _clean(records: list, rules: Rules) -> bool:
    """True when no record of the batch holds a secret key (at any depth of :data:`FIELDS`) nor an object whose
    keys only its encoding would show. Walks level by level over the whole batch: each level costs a few C-level
    passes (the union of its dicts' keys compared with the keys known safe, ``map(type, ...)`` over the values),
    however many records.

    A dict the cyclic GC does not track holds no dict, list or Python object (CPython tracks a dict as soon as it
    holds one), so the level below it needs no look: the usual ``{"x": 1}`` ends the walk without a pass over its
    values. Objects of C types without GC support are the one thing such a dict may still hold that its encoding
    could turn into keys (a C type's ``to_dict()``, a NumPy object array): the encoder counts those conversions
    (``Runtime.untracked_conversions``) and the buffer then redacts the batch again, thoroughly."""
    safe = rules.safe
    # `used` and `generated` are on nearly every record; the other fields are looked up only where present.
    fields = [name for name in FIELDS if name in _COMMON or any(map(dict.__contains__, records, repeat(name)))]
    values = list(filter(None, chain.from_iterable(map(dict.get, records, repeat(name)) for name in fields)))
    for _ in range(_MAX_LEVELS):
        dicts: list = []
        while values:
            if _DICT.issuperset(map(type, values)):  # the usual level: only dicts
                dicts.extend(values)
                break
            types = list(map(type, values))
            if _SCALARS.issuperset(types):
                break
            if not _CONTAINERS.issuperset(types) and not all(map(_keyless, set(types) - _CONTAINERS)):
                return False
            dicts.extend(compress(values, map(_DICT.__contains__, types)))
            values = list(chain.from_iterable(compress(values, map(_SEQUENCES.__contains__, types))))
        if not dicts:
            return True
        # One set of the level's keys (a C loop over each dict, reusing the keys' cached hashes), then one set
        # comparison: cheaper than a lookup in `safe` per key, and a batch's keys are mostly the same few names.
        keys = set().union(*dicts)
        if not safe.issuperset(keys):
            if any(map(rules.is_secret, keys.difference(safe))):
                return False
        # Only the dicts the GC tracks can hold something below them (see above).
        tracked = list(filter(gc.is_tracked, dicts))
        if not tracked:
            return True  # the usual end: only atomic values below this level
        values = list(chain.from_iterable(map(dict.values, tracked)))
    return False


def _redact(value: Any, rules: Rules) -> tuple[Any, int]:
    """(value with secrets replaced, count); the value itself when nothing changed (copy on write)."""
    cls = type(value)
    if cls in _SCALARS:
        return value, 0
    if cls is dict:
        safe = rules.safe
        if safe.issuperset(value) and _SCALARS.issuperset(map(type, value.values())):
            return value, 0
        out = None
        count = 0
        for key, item in value.items():
            if key in safe or not rules.is_secret(key):
                if type(item) in _SCALARS:
                    continue
                new, n = _redact(item, rules)
                if new is item:
                    continue
            else:
                if item is None or (type(item) is str and item == REDACTED):
                    continue
                new, n = REDACTED, 1
            if out is None:
                out = dict(value)
            out[key] = new
            count += n
        return (out, count) if out is not None else (value, 0)
    if cls is list or cls is tuple:
        out_list = None
        count = 0
        for j, item in enumerate(value):
            new, n = _redact(item, rules)
            if new is not item:
                if out_list is None:
                    out_list = list(value)
                out_list[j] = new
                count += n
        return (out_list, count) if out_list is not None else (value, 0)
    if _keyless(cls) and not getattr(getattr(value, "dtype", None), "hasobject", False):
        return value, 0
    # An object (dataclass, to_dict(), Namespace, a dict subclass...): its keys appear only when it is encoded, so
    # convert it as the encoder would (once: the converted form replaces it) and look inside.
    from flowcept.serialize import sanitize

    return _redact(sanitize(value), rules)
