"""Secret-looking values are replaced before anything reaches a report or an exported file description."""

from __future__ import annotations

from typing import Any

__all__ = ["redact", "REDACTED", "SECRET_KEY_PARTS"]

REDACTED = "REDACTED"
#: A key containing one of these (case-insensitive) has its value replaced.
SECRET_KEY_PARTS = ("password", "passwd", "token", "api_key", "apikey", "secret", "access_key", "credential")


def _is_secret(key: Any) -> bool:
    lowered = str(key).lower()
    return any(part in lowered for part in SECRET_KEY_PARTS)


def redact(value: Any) -> Any:
    """A copy of ``value`` where every dict entry whose key looks secret holds ``"REDACTED"`` (at any depth)."""
    if isinstance(value, dict):
        return {k: (REDACTED if _is_secret(k) and v is not None else redact(v)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact(v) for v in value]
    return value
