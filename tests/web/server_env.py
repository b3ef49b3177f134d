"""A real `python -m flowcept serve` process on a free port, over a test store, and a small HTTP client."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_server(settings_path: str, cwd, *args: str, port: int | None = None):
    """Start ``flowcept serve`` with ``settings_path``; yield its base URL; stop it afterwards."""
    port = port or free_port()
    env = {**os.environ, "FLOWCEPT_SETTINGS_PATH": str(settings_path)}
    log = open(os.path.join(cwd, f"serve_{port}.log"), "wb")
    proc = subprocess.Popen([sys.executable, "-m", "flowcept", "serve", "--port", str(port), *args], cwd=cwd,
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"flowcept serve exited with {proc.returncode}: "
                                   f"{open(log.name, 'rb').read().decode(errors='replace')}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("flowcept serve did not start in 60 s") from None
                time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def request(base: str, path: str, body=None, method: str | None = None, headers: dict | None = None):
    """(status, parsed JSON or text) of one HTTP request."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, method=method,
                                 headers={"content-type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=60) as res:
            status, raw, ctype = res.status, res.read(), res.headers.get("content-type", "")
    except urllib.error.HTTPError as err:
        status, raw, ctype = err.code, err.read(), err.headers.get("content-type", "")
    return status, (json.loads(raw) if "json" in ctype else raw.decode())
