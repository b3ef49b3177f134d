"""A private PostgreSQL schema per test session, so test runs never touch each other's tables."""

from __future__ import annotations

import contextlib
import os
import uuid
from typing import Iterator


@contextlib.contextmanager
def private_schema(base_dsn: str) -> Iterator[str]:
    """Create a fresh schema and yield a DSN whose ``search_path`` points at it; drop it afterwards."""
    import psycopg
    from psycopg.conninfo import make_conninfo

    schema = f"flowcept_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(base_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield make_conninfo(base_dsn, options=f"-csearch_path={schema}")
    finally:
        with psycopg.connect(base_dsn, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def server_version(dsn: str) -> str:
    import psycopg

    with psycopg.connect(dsn) as conn:
        return conn.execute("SHOW server_version").fetchone()[0]
