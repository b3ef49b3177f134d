"""`DBAPI` (compatibility path)."""

from flowcept.query.api import DBAPI

__all__ = ["DBAPI"]
