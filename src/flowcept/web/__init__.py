"""The read-only web service and UI (``flowcept serve``, extra ``flowcept[web]``).

``create_app(settings)`` builds the FastAPI application over the configured store; :mod:`.server` runs it.
"""

from __future__ import annotations

__all__ = ["create_app"]


def create_app(*args, **kwargs):
    """See :func:`flowcept.web.app.create_app`."""
    from flowcept.web.app import create_app as _create

    return _create(*args, **kwargs)
