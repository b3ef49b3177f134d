"""What every adapter shares: counters, failure handling, emitting, and a polling thread for observers."""

from __future__ import annotations

import logging
import threading
from flowcept import context as _ctx
from flowcept._internal_errors import report_internal_error
from flowcept.capture.emit import emit

logger = logging.getLogger("flowcept")


class Adapter:
    """Base of the adapters. The controller calls, on its own thread:

    - ``check()`` at the start of ``start()``, before the pipeline opens: raise ``ConfigError`` for bad config;
    - ``start(scope)`` once the workflow's scope is running;
    - ``stop()`` at the start of ``stop()``: deliver what was observed until now, then stop observing.

    Failures after ``start`` never reach the user: :meth:`failed` logs, counts them in :attr:`errors` (shown in
    the stop report) and in flowcept's internal error count.

    Attributes:
        key: the adapter's settings key (``adapters.<key>``), stored as ``adapter_id`` on its records.
        captured: records emitted. errors: failures. rejected: inputs that could not become records.
    """

    kind = ""
    started = False

    def __init__(self, key: str, cfg: dict):
        self.key = key
        self.cfg = cfg
        self.scope: _ctx.Scope | None = None
        self.captured = 0
        self.errors = 0
        self.rejected = 0

    def check(self) -> None:
        """Raise ``ConfigError`` when the observed tool cannot be reached as configured."""

    def start(self, scope: _ctx.Scope) -> None:
        """Start observing; records go to ``scope``'s pipeline."""
        self.scope = scope

    def stop(self) -> None:
        """Emit what was observed until now and stop observing."""

    def emit(self, record: dict) -> None:
        """Hand one record to the pipeline (``adapter_id`` and the workflow's ids filled in)."""
        record.setdefault("adapter_id", self.key)
        if self.scope is not None and emit(record, self.scope):
            self.captured += 1

    def failed(self, what: str, exc: BaseException) -> None:
        """Count and log a failure (never raised to the user)."""
        self.errors += 1
        report_internal_error(f"{self.kind} adapter {self.key!r}: {what}", exc)

    def counts(self) -> dict[str, int]:
        """The adapter's counters, for the stop report."""
        return {"captured": self.captured, "errors": self.errors, "rejected": self.rejected}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(key={self.key!r})"


class PollingAdapter(Adapter):
    """An adapter that looks at its tool every ``watch_interval_sec`` on a daemon thread, and once more at stop.

    Subclasses implement :meth:`poll`; it runs on one thread at a time (the poller, or the caller of ``stop``).
    """

    def __init__(self, key: str, cfg: dict):
        super().__init__(key, cfg)
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def poll(self, final: bool) -> None:  # pragma: no cover - abstract
        """Look at the tool once and emit what is new (``final``: the last look, at stop)."""
        raise NotImplementedError

    def start(self, scope: _ctx.Scope) -> None:
        super().start(scope)
        self._stopping.clear()  # a controller may be started again after a stop
        self._thread = threading.Thread(target=self._run, name=f"flowcept-{self.kind}-{self.key}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        _ctx.suppress_capture()
        while not self._stopping.wait(self.cfg["watch_interval_sec"]):
            self._poll_once(final=False)

    def _poll_once(self, final: bool) -> None:
        with self._lock:
            try:
                self.poll(final)
            except Exception as exc:  # noqa: BLE001 - an observer must never break the user's program
                self.failed("poll", exc)

    def stop(self) -> None:
        self._stopping.set()
        thread = self._thread
        if thread is not None:
            thread.join(max(30.0, 3 * self.cfg["watch_interval_sec"]))
        self._poll_once(final=True)
