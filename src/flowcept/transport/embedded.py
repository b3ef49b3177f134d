"""The default transport: batches go straight into the configured Store from the flusher thread."""

from __future__ import annotations

from flowcept.store import Store, make_store


class EmbeddedTransport:
    """Writes each batch to a Store in this process (no broker)."""

    name = "store"
    primary = True

    def __init__(self, store: Store):
        self.store = store

    @classmethod
    def from_settings(cls, settings) -> "EmbeddedTransport | None":
        store = make_store(settings)
        return cls(store) if store is not None else None

    def write(self, batch) -> int:
        upsert_encoded = getattr(self.store, "upsert_encoded", None)
        if upsert_encoded is not None:
            upsert_encoded(batch)
        else:
            self.store.upsert(batch.docs)
        return 0

    def flush(self, timeout: float | None = None) -> bool:
        return True  # upsert() commits before it returns

    def close(self) -> None:
        self.store.close()
