"""The only process-wide mutable state: the process's record pipeline (buffer, flusher, sinks), shared by every
running controller and reference-counted, so two workflows in one process share one flusher and one store
connection, and stopping one never stops the other.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading

from flowcept.buffer import BatchBuffer

logger = logging.getLogger("flowcept")

# Re-entrant: the SIGTERM handler stops controllers, which takes it, and may run while this thread holds it.
_lock = threading.RLock()
_state: dict = {"buffer": None, "users": 0, "pid": None, "dump_path": None, "keeper": None, "keeper_users": 0}


def hostname() -> str:
    """This host's name as records carry it (``hostname``): ``socket.getfqdn()``, resolved once per process.

    The fully qualified name, as the reference implementation records it, so records of both name a host alike
    and names stay distinct across clusters whose nodes share short names. ``getfqdn`` may ask the resolver, so it
    runs once, on first use (decoration of the first task or start of the first workflow), never per record;
    when it fails or gives nothing, ``socket.gethostname()``, then ``"unknown_hostname"``.
    """
    name = _state.get("hostname")
    if name is None:
        name = _resolve_hostname()
        _state["hostname"] = name
    return name


def _resolve_hostname() -> str:
    for resolve in (socket.getfqdn, socket.gethostname):
        try:
            name = resolve()
        except OSError:
            continue
        if name:
            return name
    return "unknown_hostname"


def make_sinks(settings, workflow_id: str | None) -> tuple[list, str | None]:
    """The sinks the settings ask for: the JSONL buffer file (when enabled) and the transport."""
    from flowcept.transport import make_transport
    from flowcept.transport.jsonl import JsonlBufferFile, buffer_file_path

    sinks: list = []
    dump_path = None
    if settings.project.dump_buffer.enabled:
        dump_path = buffer_file_path(settings.project.dump_buffer, workflow_id)
        buffer_file = JsonlBufferFile(dump_path)
        buffer_file.open_now()
        sinks.append(buffer_file)
    transport = make_transport(settings)
    if transport is not None:
        sinks.append(transport)
    sinks.extend(_taps)
    if not sinks:
        logger.warning("flowcept: no store, no message queue and no buffer file are enabled, so captured records "
                       "are discarded. Enable databases.sqlite, mq or project.dump_buffer in the settings.")
    return sinks, dump_path


def acquire_buffer(settings, workflow_id: str | None) -> BatchBuffer:
    """The process's buffer, created on first use; each call must be paired with :func:`release_buffer`."""
    with _lock:
        if _state["pid"] != os.getpid():
            _state.update(buffer=None, users=0, pid=os.getpid(), dump_path=None, keeper=None, keeper_users=0)
        if _state["buffer"] is None:
            from flowcept.redact import Redactor

            redactor = Redactor.from_settings(settings.project)  # a bad pattern fails before any file is made
            sinks, dump_path = make_sinks(settings, workflow_id)
            b = settings.buffer
            _state["buffer"] = BatchBuffer(sinks, batch_size=b.batch_size, flush_interval_secs=b.flush_interval_secs,
                                           max_size=b.max_size, full_wait_secs=b.full_wait_secs, redactor=redactor)
            _state["dump_path"] = dump_path
            _install_signal_flush(signal.SIGTERM)
        _state["users"] += 1
        return _state["buffer"]


def release_buffer(buffer: BatchBuffer, timeout: float | None) -> bool:
    """Flush ``buffer``; the last user also closes it. Returns False when the flush timed out."""
    with _lock:
        last = _state["buffer"] is buffer and _state["users"] <= 1
        if _state["buffer"] is buffer:
            _state["users"] -= 1
            if last:
                _state["buffer"] = None
    if last:
        return buffer.close(timeout)
    return buffer.flush(timeout)


_taps: list = []


def add_tap(tap) -> None:
    """Also deliver every batch of this process to ``tap`` (a Sink; custom consumers use it)."""
    with _lock:
        _taps.append(tap)
        buffer = _state["buffer"]
        if buffer is not None and _state["pid"] == os.getpid():
            buffer.sinks.append(tap)


def remove_tap(tap) -> None:
    """Stop delivering batches to ``tap``."""
    with _lock:
        if tap in _taps:
            _taps.remove(tap)
        buffer = _state["buffer"]
        if buffer is not None and tap in buffer.sinks:
            buffer.sinks.remove(tap)


def flush_pending(timeout: float = 30.0) -> None:
    """Deliver what this process captured so far (no-op without a running pipeline or on the flusher itself)."""
    buffer = _state["buffer"]
    if buffer is None or _state["pid"] != os.getpid() or threading.current_thread() is buffer._thread:
        return
    buffer.flush(timeout)


def current_dump_path() -> str | None:
    """The JSONL buffer file the running pipeline writes, if any."""
    return _state["dump_path"] if _state["buffer"] is not None else None


def transport_of(buffer: BatchBuffer | None):
    """The buffer's message-queue transport (the sink that can register workflows), or None."""
    for sink in getattr(buffer, "sinks", ()):
        if hasattr(sink, "register_workflow"):
            return sink
    return None


def acquire_keeper(settings, keep_alive: bool = False):
    """The process's keeper thread (started on first use); pair each call with :func:`release_keeper`.

    Args:
        keep_alive: run it as a non-daemon thread, so the process lives on after the main script ends until it is
            stopped or signalled (the spec's ``check_safe_stops=False`` persistence process).
    """
    from flowcept.keeper import Keeper

    with _lock:
        if _state["pid"] != os.getpid():
            _state.update(buffer=None, users=0, pid=os.getpid(), dump_path=None, keeper=None, keeper_users=0)
        keeper = _state["keeper"]
        if keeper is None:
            keeper = Keeper(settings).start(daemon=not keep_alive)
            _state["keeper"] = keeper
            if keep_alive:
                _install_signal_flush(signal.SIGINT)
            _install_signal_flush(signal.SIGTERM)
        _state["keeper_users"] += 1
        return keeper


def release_keeper(keeper, timeout: float | None) -> None:
    """Drop one use of the keeper; the last user stops it (the batch in hand is finished and acknowledged)."""
    with _lock:
        if _state["keeper"] is not keeper:
            return
        _state["keeper_users"] -= 1
        last = _state["keeper_users"] <= 0
        if last:
            _state["keeper"] = None
    if last:
        keeper.close(timeout)


def current_keeper():
    """The keeper running in this process, if any."""
    return _state["keeper"] if _state["pid"] == os.getpid() else None


_installed: dict = {}


def _install_signal_flush(signum: int) -> None:
    """On SIGTERM (and SIGINT for a keep-alive keeper), flush what this process captured before it exits.

    Installed only from the main thread and only where the user has no handler of their own (the default one);
    after flushing, the previous handler runs, so the process still ends the way it would have.
    """
    if signum in _installed or threading.current_thread() is not threading.main_thread():
        return
    try:
        previous = signal.getsignal(signum)
    except (ValueError, OSError):
        return
    default = signal.SIG_DFL if signum != signal.SIGINT else signal.default_int_handler
    if previous is not default:
        return

    def on_signal(sig, frame):
        flush_for_exit()
        signal.signal(sig, previous)
        if previous is signal.SIG_DFL:
            os.kill(os.getpid(), sig)
        elif callable(previous):
            previous(sig, frame)

    try:
        signal.signal(signum, on_signal)
        _installed[signum] = previous
    except (ValueError, OSError):
        pass


def flush_for_exit() -> None:
    """Deliver every buffered record and stop the keeper after its current batch (signal and exit paths)."""
    from flowcept.settings import get_settings

    from flowcept import context

    timeout = get_settings().buffer.stop_timeout_secs
    # Workflows still running end here (their end message is written): a signalled process, e.g. the spec's
    # persistence process ended by Ctrl+C or the job scheduler, is their normal end.
    for scope in reversed(list(context._running)):
        owner = scope.owner
        if owner is not None and getattr(owner, "is_started", False):
            try:
                owner.stop()
            except Exception as exc:  # noqa: BLE001
                logger.warning("flowcept: stopping workflow %s at exit failed: %r", scope.workflow_id, exc)
    buffer, keeper = _state["buffer"], current_keeper()
    if buffer is not None and _state["pid"] == os.getpid():
        try:
            buffer.flush(timeout)
        except Exception as exc:  # noqa: BLE001
            logger.warning("flowcept: flushing at exit failed: %r", exc)
    if keeper is not None:
        try:
            keeper.stop(timeout)
        except Exception as exc:  # noqa: BLE001
            logger.warning("flowcept: stopping the keeper at exit failed: %r", exc)
