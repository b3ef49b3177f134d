"""The default transport: batches go straight into the configured Store from the flusher thread."""

from __future__ import annotations

from flowcept.store import Store, make_store
from flowcept.transport import CONFIRMED, Confirmation


class EmbeddedTransport:
    """Writes each batch to a Store in this process (no broker): a write is stored once it returns."""

    name = "store"
    primary = True

    def __init__(self, store: Store):
        self.store = store

    @classmethod
    def from_settings(cls, settings) -> "EmbeddedTransport | None":
        store = make_store(settings)
        return cls(store) if store is not None else None

    def write(self, batch) -> int:
        self.store.upsert_encoded(batch)
        return 0

    def flush(self, timeout: float | None = None) -> bool:
        return True  # upsert_encoded() commits before it returns

    def begin_workflow(self, workflow_id: str) -> None:
        """Nothing to note: every write is committed before the flusher moves on."""

    def hurry(self, deadline: float | None) -> None:
        """Nothing to hurry: writes never wait for a broker."""

    def confirm(self, workflow_id: str, deadline: float, wait_stored: bool = False) -> Confirmation:
        return CONFIRMED  # the buffer's flush returned after the store committed

    def close(self) -> None:
        self.store.close()
