"""Compatibility path: the merge rules live in :mod:`flowcept.store.merge`."""

from flowcept.store.merge import TERMINAL_STATUSES, coalesce, merge_record

__all__ = ["merge_record", "coalesce", "TERMINAL_STATUSES"]
