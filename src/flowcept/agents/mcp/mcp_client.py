"""``run_tool``: call a tool of a running MCP server (the reference's agent client helper)."""

from __future__ import annotations

import asyncio
from typing import Any


def run_tool(tool_name: str, kwargs: dict | None = None, host: str | None = None, port: int | None = None,
             url: str | None = None) -> list[str]:
    """Call ``tool_name`` with ``kwargs`` on the MCP server at ``url`` (default
    ``http://<agent.mcp_host>:<agent.mcp_port>/mcp``, streamable HTTP) and return the text of each content item.

    Raises:
        BackendUnavailableError: the ``mcp`` package is not installed (``pip install 'flowcept[mcp]'``).
        RuntimeError: the tool reported an error (its text is the message).
    """
    try:
        from mcp import ClientSession
        from mcp.client import streamable_http
    except ImportError as exc:
        from flowcept.errors import BackendUnavailableError

        raise BackendUnavailableError("run_tool", "mcp") from exc
    if url is None:
        from flowcept.settings import get_settings

        agent = get_settings().agent
        url = f"http://{host or agent.mcp_host}:{port or agent.mcp_port}/mcp"

    # mcp 2.x names the client streamable_http_client; 1.x named it streamablehttp_client.
    connect = getattr(streamable_http, "streamable_http_client", None) or streamable_http.streamablehttp_client

    async def call() -> Any:
        async with connect(url) as (read, write, *_):
            async with ClientSession(read, write) as session:
                await session.initialize()
                return await session.call_tool(tool_name, arguments=kwargs or {})

    result = asyncio.run(call())
    texts = [getattr(item, "text", str(item)) for item in result.content]
    if getattr(result, "is_error", None) or getattr(result, "isError", None):  # mcp 2.x / 1.x field names
        raise RuntimeError(f"tool {tool_name!r} failed: {' '.join(texts)}")
    return texts
