"""Reading records back: :class:`DBAPI` (``Flowcept.db``) over whichever store the settings enable."""

from flowcept.query.api import ASCENDING, DESCENDING, DBAPI

__all__ = ["DBAPI", "ASCENDING", "DESCENDING"]
