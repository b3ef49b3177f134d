"""Reports and crate descriptions always redact secret-looking values, by the same rules as capture
(:mod:`flowcept.redact`, keys ``project.redact_keys`` and ``project.redact_allow``), even where capture redaction
was turned off: a report is made to be shared."""

from __future__ import annotations

__all__ = ["redact"]


def redact(record: dict) -> dict:
    """A copy of a record with the values of secret-looking keys in ``used``, ``generated``, ``custom_metadata``
    and ``extra_metadata`` replaced by ``"REDACTED"``."""
    from flowcept.redact import Redactor
    from flowcept.settings import get_settings

    project = get_settings().project
    batch = [dict(record)]
    Redactor(True, project.redact_keys, project.redact_allow)(batch, thorough=True)  # objects included
    return batch[0]
