"""Who may reach the web service: loopback-only unless a token is set; the token on every request."""

from __future__ import annotations

import hmac
import ipaddress

from flowcept.errors import ConfigError

TOKEN_COOKIE = "flowcept_token"
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


def is_loopback(host: str) -> bool:
    """Whether binding to ``host`` keeps the service on this machine."""
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None) -> None:
    """Refuse to serve beyond loopback without a token.

    Raises:
        ConfigError: ``host`` is not a loopback address and no token is set.
    """
    if not is_loopback(host) and not token:
        raise ConfigError(f"binding the web service to {host!r} exposes your provenance to the network: set a token "
                          "(web_server.token in the settings, env FLOWCEPT_WEB_TOKEN, or flowcept serve --token) "
                          "or bind to 127.0.0.1", key="web_server.token")


def token_matches(expected: str, presented: str | None) -> bool:
    """Constant-time comparison of the presented token with the expected one."""
    return presented is not None and hmac.compare_digest(expected.encode(), presented.encode())


def presented_token(headers, query_params, cookies) -> str | None:
    """The token a request carries: ``Authorization: Bearer``, else ``?token=``, else the cookie the page got."""
    auth = headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return query_params.get("token") or cookies.get(TOKEN_COOKIE)
