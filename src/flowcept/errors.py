"""Every exception flowcept raises on purpose.

::

    FlowceptError                 base of everything below
    ├── ConfigError               bad settings or arguments; .key names the key, the message says the fix
    ├── BackendUnavailableError   an optional dependency is missing; names the pip extra to install
    ├── TransportError            message broker refusing an operation
    │   └── BrokerUnreachableError  the broker does not answer (retried, then records are spilled)
    ├── StoreError                database failure
    │   ├── QueryError            bad filter: unknown operator, bad path, wrong value type
    │   ├── ObjectNotFoundError   no stored object (or no such version of it); names the id and version
    │   └── ObjectIntegrityError  stored object content does not match its checksum or size
    └── StopTimeoutError          stop() deadline passed; .unconfirmed count and .spill_path

Inside capture nothing is raised to the user's code: failures are logged and counted
(see :mod:`flowcept._internal_errors`).
"""

from __future__ import annotations


class FlowceptError(Exception):
    """Base class of every flowcept error."""


class ConfigError(FlowceptError, ValueError):
    """A settings key or constructor argument is invalid.

    Args:
        message: what is wrong and how to fix it.
        key: the dotted settings key (or argument name) at fault.
        path: the settings file it came from, when there is one.
    """

    def __init__(self, message: str, key: str | None = None, path: str | None = None):
        self.key = key
        self.path = path
        where = f" (in {path})" if path else ""
        prefix = f"{key}: " if key else ""
        super().__init__(f"{prefix}{message}{where}")

    def __reduce__(self):
        return (_rebuild_config_error, (self.args[0], self.key, self.path))


def _rebuild_config_error(text, key, path):
    err = ConfigError.__new__(ConfigError)
    Exception.__init__(err, text)
    err.key, err.path = key, path
    return err


class BackendUnavailableError(FlowceptError, ImportError):
    """An optional dependency is not installed."""

    def __init__(self, what: str, extra: str):
        self.extra = extra
        super().__init__(f"{what} needs an optional dependency: pip install 'flowcept[{extra}]'")

    def __reduce__(self):
        return (_rebuild_simple, (BackendUnavailableError, self.args))


def _rebuild_simple(cls, args):
    err = cls.__new__(cls)
    Exception.__init__(err, *args)
    return err


class TransportError(FlowceptError):
    """The message transport is unreachable or refused an operation."""


class BrokerUnreachableError(TransportError):
    """The message broker does not answer (connection refused, lost or timed out)."""


class StoreError(FlowceptError):
    """The record store failed."""


class QueryError(StoreError, ValueError):
    """A query filter, projection or sort is malformed."""


class ObjectNotFoundError(StoreError, LookupError):
    """No stored object has this id, or the object has no such version."""


class ObjectIntegrityError(StoreError):
    """An object's stored content does not match its recorded sha256 or size (nothing wrong is returned)."""


class StopTimeoutError(FlowceptError, TimeoutError):
    """``stop()`` passed its deadline with records still unconfirmed."""

    def __init__(self, unconfirmed: int, spill_path: str | None = None, timeout: float | None = None):
        self.unconfirmed = unconfirmed
        self.spill_path = spill_path
        self.timeout = timeout
        where = f"; they were spilled to {spill_path}" if spill_path else ""
        super().__init__(
            f"stop() timed out after {timeout}s with {unconfirmed} record(s) unconfirmed{where}. "
            "Raise buffer.stop_timeout_secs in the settings, or check the transport/store."
        )

    def __reduce__(self):
        return (StopTimeoutError, (self.unconfirmed, self.spill_path, self.timeout))


for _cls in (FlowceptError, ConfigError, BackendUnavailableError, TransportError, StoreError, QueryError,
             ObjectNotFoundError, ObjectIntegrityError, StopTimeoutError):
    _cls.__module__ = "flowcept"
