"""``BaseConsumer``: something that receives captured records one at a time (minimal placeholder, see below)."""

from __future__ import annotations


class BaseConsumer:
    """A receiver of captured records.

    Subclasses override :meth:`message_handler`; :meth:`start_consumer` and :meth:`stop_consumer` begin and end
    delivery. This minimal base was written for the agent context manager; the persistence consumer's owner may
    extend it.
    """

    def start_consumer(self) -> "BaseConsumer":
        """Begin receiving records; returns self."""
        return self

    def stop_consumer(self) -> None:
        """Stop receiving records."""

    def message_handler(self, msg: dict) -> bool:
        """Handle one record; return False to stop consuming."""
        return True
