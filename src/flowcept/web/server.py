"""Run the web service with uvicorn (``flowcept serve``)."""

from __future__ import annotations

import logging

from flowcept.web.security import check_bind

logger = logging.getLogger("flowcept")


def serve(settings=None, host: str | None = None, port: int | None = None, token: str | None = None) -> None:
    """Serve the UI and API until interrupted.

    Raises:
        ConfigError: a non-loopback ``host`` without a token, or no store enabled.
        BackendUnavailableError: fastapi/uvicorn are not installed (``pip install 'flowcept[web]'``).
    """
    import dataclasses

    from flowcept.settings import get_settings

    settings = settings or get_settings()
    web = settings.web_server
    host = host or web.host
    port = port or web.port
    token = token or web.token
    check_bind(host, token)
    try:
        import uvicorn
    except ImportError as exc:
        from flowcept.errors import BackendUnavailableError

        raise BackendUnavailableError("flowcept serve", "web") from exc
    from flowcept.web.app import create_app

    if token != web.token:
        settings = dataclasses.replace(settings, web_server=dataclasses.replace(web, token=token))
    app = create_app(settings)
    logger.warning("flowcept UI on http://%s:%d/%s", host, port, "?token=<token>" if token else "")
    uvicorn.run(app, host=host, port=port, log_level="warning")
