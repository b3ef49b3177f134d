"""Keyset paging: a page is the records after the last one shown, in a total order (never OFFSET scans)."""

from __future__ import annotations

import base64

import orjson

from flowcept.errors import QueryError

MAX_LIMIT = 1000


def check_limit(limit: int) -> int:
    """A page size between 1 and :data:`MAX_LIMIT`.

    Raises:
        QueryError: outside that range.
    """
    if not 1 <= limit <= MAX_LIMIT:
        raise QueryError(f"limit must be between 1 and {MAX_LIMIT}, got {limit}")
    return limit


def encode_cursor(values: list) -> str:
    """An opaque cursor for the last record of a page (its sort values)."""
    return base64.urlsafe_b64encode(orjson.dumps(values)).decode()


def decode_cursor(cursor: str, size: int) -> list:
    """The sort values in ``cursor``.

    Raises:
        QueryError: not a cursor this service made.
    """
    try:
        values = orjson.loads(base64.urlsafe_b64decode(cursor.encode()))
    except Exception:  # noqa: BLE001 - any garbage is the same user error
        raise QueryError("invalid cursor: pass back the next_cursor of a previous page") from None
    if not isinstance(values, list) or len(values) != size:
        raise QueryError("invalid cursor: pass back the next_cursor of a previous page")
    return values


def after(sort_field: str, descending: bool, id_field: str, cursor: list | None) -> dict | None:
    """The filter selecting records strictly after ``cursor`` in the order (sort_field [desc], id_field asc).

    Records without ``sort_field`` (missing or null) are part of the order: the store sorts them first ascending
    and last descending, so a cursor crosses from them to the rest (ascending) or from the rest to them
    (descending), and among them the id decides.
    """
    if cursor is None:
        return None
    value, last_id = cursor
    tied = {"$and": [{sort_field: value}, {id_field: {"$gt": last_id}}]}  # {field: None}: null or missing
    if value is None:
        return tied if descending else {"$or": [tied, {"$nor": [{sort_field: None}]}]}
    beyond = {sort_field: {"$lt" if descending else "$gt": value}}
    return {"$or": [beyond, tied, {sort_field: None}]} if descending else {"$or": [beyond, tied]}


def order(sort_field: str, descending: bool, id_field: str) -> list:
    """The sort spec matching :func:`after`."""
    return [(sort_field, -1 if descending else 1), (id_field, 1)]


def next_cursor(items: list[dict], limit: int, sort_field: str, id_field: str, total: int) -> str | None:
    """The cursor of the next page (the last record's sort value and id, then ``total``), or None on the last
    page."""
    if len(items) < limit:
        return None
    last = items[-1]
    return encode_cursor([last.get(sort_field), last.get(id_field), total])


def and_filters(*filters: dict | None) -> dict:
    """The conjunction of the non-empty filters."""
    present = [f for f in filters if f]
    if not present:
        return {}
    return present[0] if len(present) == 1 else {"$and": present}
