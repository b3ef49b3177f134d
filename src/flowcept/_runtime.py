"""The only process-wide mutable state, in one object (:data:`RUNTIME`), with one :meth:`Runtime.reset_after_fork`.

What lives here: the process's record pipeline (buffer, flusher, sinks, keeper thread), shared by every running
controller and reference-counted, so two workflows in one process share one flusher and one store connection, and
stopping one never stops the other; the running scopes (the fallback for contexts that never entered one); the id
prefix and counter; the live buffers (flushed at exit, quiesced around fork); the capture error and warning counts;
the query API shared by ``Flowcept.db``; and the host name. Context variables stay in :mod:`flowcept.context`.

Nothing here is imported from :mod:`flowcept` at import time (the buffer, the keeper and the query API are imported
when first used), so any module may import this one.
"""

from __future__ import annotations

import argparse
import atexit
import itertools
import logging
import os
import signal
import socket
import threading
import weakref
from typing import Any

logger = logging.getLogger("flowcept")


class Runtime:
    """Process state. One instance, :data:`RUNTIME`; tests reset it through :func:`flowcept.testing.reset`."""

    def __reduce__(self):
        # Decorated functions defined in __main__ travel by value (cloudpickle: Dask process workers) with their
        # reference to this object: it unpickles as the receiving process's own runtime, never as a copy.
        return _the_runtime, ()

    def __init__(self) -> None:
        # Re-entrant: the SIGTERM handler stops controllers, which takes it, and may run while this thread holds it.
        self.lock = threading.RLock()
        self.pid = os.getpid()
        # The pipeline.
        self.buffer: Any = None  # the BatchBuffer while a controller runs
        self.users = 0  # controllers using it
        self.dump_path: str | None = None
        self.keeper: Any = None
        self.keeper_users = 0
        self.taps: list = []  # extra sinks (custom consumers), added to every buffer made here
        self.signals: dict[int, Any] = {}  # signal -> the handler ours replaced
        # Every BatchBuffer alive in this process (flushed at exit, quiesced around fork).
        self.live_buffers: "weakref.WeakSet[Any]" = weakref.WeakSet()
        self._held_for_fork: list = []
        # Capture.
        self.running_scopes: list = []  # newest last: the fallback for contexts that never entered a scope
        self.inherited_scopes: list = []  # scopes a forked child inherited from its parent (not its to end)
        self.last_workflow_id: str | None = None
        self.last_campaign_id: str | None = None
        self.id_prefix = ""
        self.id_counter = itertools.count(10**9)
        self.warned: set[str] = set()  # one-time warnings already given
        self.capture_errors = 0
        self.capture_warnings = 0
        self.error_logged_at: dict[str, float] = {}
        self.dict_classes: set[type] = {argparse.Namespace}  # captured through __dict__ (register_dict_class)
        # Objects of C types without GC support that the encoder turned into containers (their keys were not there to
        # check before encoding: flowcept.redact._clean); a change during a batch's encoding redacts it again.
        self.untracked_conversions = 0
        self.max_snapshot_items = 10_000  # instrumentation.max_snapshot_items of the latest controller started
        # Query API and host.
        self.db: Any = None  # the DBAPI behind Flowcept.db
        self.db_lock = threading.Lock()
        self.host: str | None = None
        self.reseed_ids()

    def reseed_ids(self) -> None:
        """A new random id prefix and a fresh counter (see :mod:`flowcept.ids`)."""
        self.id_prefix = os.urandom(8).hex() + "-"
        self.id_counter = itertools.count(10**9)

    # ---- fork -------------------------------------------------------------------------------------------------
    def before_fork(self) -> None:
        """Wait for the batch each flusher is writing, so the child never inherits a lock taken mid-write."""
        for buffer in list(self.live_buffers):
            if buffer.hold_for_fork(timeout=5.0):
                self._held_for_fork.append(buffer)

    def after_fork_in_parent(self) -> None:
        """Let the flushers go on."""
        while self._held_for_fork:
            self._held_for_fork.pop().release_after_fork()

    def reset_after_fork(self) -> None:
        """In a forked child: new ids, empty buffers, and no pipeline or keeper of the parent's.

        Scopes inherited from the parent stay running (a forked worker's captured calls go to the parent's workflow,
        through its own emptied buffer, whose flusher restarts on first use); the parent's pipeline is not the
        child's to release.
        """
        self.pid = os.getpid()
        self.lock = threading.RLock()
        self.db_lock = threading.Lock()
        self.reseed_ids()
        self._held_for_fork.clear()
        for buffer in list(self.live_buffers):
            buffer.reset_after_fork()
        self.buffer, self.users, self.dump_path, self.keeper, self.keeper_users = None, 0, None, None, 0
        # The parent's running workflows: this child records into them but never ends them (see flush_for_exit).
        self.inherited_scopes = list(self.running_scopes)

    def close_buffers_at_exit(self) -> None:
        """Flush and close every live buffer (atexit)."""
        for buffer in list(self.live_buffers):
            try:
                buffer.close(timeout=10.0)
            except Exception:  # noqa: BLE001 - the interpreter is ending; nothing to report to
                pass


RUNTIME = Runtime()


def _the_runtime() -> Runtime:
    return RUNTIME
os.register_at_fork(before=RUNTIME.before_fork, after_in_parent=RUNTIME.after_fork_in_parent,
                    after_in_child=RUNTIME.reset_after_fork)
atexit.register(RUNTIME.close_buffers_at_exit)


def hostname() -> str:
    """This host's name as records carry it (``hostname``): ``socket.getfqdn()``, resolved once per process.

    The fully qualified name, as the reference implementation records it, so records of both name a host alike
    and names stay distinct across clusters whose nodes share short names. ``getfqdn`` may ask the resolver, so it
    runs once, on first use (decoration of the first task or start of the first workflow), never per record;
    when it fails or gives nothing, ``socket.gethostname()``, then ``"unknown_hostname"``.
    """
    name = RUNTIME.host
    if name is None:
        name = RUNTIME.host = _resolve_hostname()
    return name


def login_name(settings) -> str | None:
    """The user's login name (``getpass.getuser()``), else ``experiment.user`` of ``settings`` (containers without
    a passwd entry)."""
    import getpass

    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no passwd entry in some containers
        return getattr(settings.experiment, "user", None)


def host_identity(settings) -> dict:
    """``node_name``, ``login_name``, ``public_ip`` and ``private_ip`` as records carry them: the ``sys_metadata``
    settings first, else this host's (the IPs only when set); None values left out."""
    sysm = settings.sys_metadata
    facts = {"node_name": sysm.node_name or os.uname().nodename, "login_name": sysm.login_name or login_name(settings),
             "public_ip": sysm.public_ip, "private_ip": sysm.private_ip}
    return {k: v for k, v in facts.items() if v is not None}


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
    sinks.extend(RUNTIME.taps)
    if not sinks:
        logger.warning("flowcept: no store, no message queue and no buffer file are enabled, so captured records "
                       "are discarded. Enable databases.sqlite, mq or project.dump_buffer in the settings.")
    return sinks, dump_path


def acquire_buffer(settings, workflow_id: str | None):
    """The process's buffer (a :class:`flowcept.buffer.BatchBuffer`), created on first use; pair each call with
    :func:`release_buffer`."""
    from flowcept.buffer import BatchBuffer
    from flowcept.redact import Redactor

    rt = RUNTIME
    with rt.lock:
        rt.max_snapshot_items = settings.instrumentation.max_snapshot_items
        if rt.buffer is None:
            redactor = Redactor.from_settings(settings.project)  # a bad pattern fails before any file is made
            sinks, dump_path = make_sinks(settings, workflow_id)
            b = settings.buffer
            rt.buffer = BatchBuffer(sinks, batch_size=b.batch_size, flush_interval_secs=b.flush_interval_secs,
                                    max_size=b.max_size, full_wait_secs=b.full_wait_secs, redactor=redactor)
            rt.dump_path = dump_path
            _install_signal_flush(signal.SIGTERM)
        rt.users += 1
        return rt.buffer


def release_buffer(buffer, timeout: float | None) -> bool:
    """Flush ``buffer``; the last user also closes it. Returns False when the flush timed out."""
    rt = RUNTIME
    with rt.lock:
        last = rt.buffer is buffer and rt.users <= 1
        if rt.buffer is buffer:
            rt.users -= 1
            if last:
                rt.buffer = None
    if last:
        return buffer.close(timeout)
    return buffer.flush(timeout)


def add_tap(tap) -> None:
    """Also deliver every batch of this process to ``tap`` (a Sink; custom consumers use it)."""
    rt = RUNTIME
    with rt.lock:
        rt.taps.append(tap)
        if rt.buffer is not None:
            rt.buffer.sinks.append(tap)


def remove_tap(tap) -> None:
    """Stop delivering batches to ``tap``."""
    rt = RUNTIME
    with rt.lock:
        if tap in rt.taps:
            rt.taps.remove(tap)
        buffer = rt.buffer
        if buffer is not None and tap in buffer.sinks:
            buffer.sinks.remove(tap)


def flush_pending(timeout: float = 30.0) -> None:
    """Deliver what this process captured so far (no-op without a running pipeline or on the flusher itself)."""
    buffer = RUNTIME.buffer
    if buffer is None or buffer.is_flusher_thread():
        return
    buffer.flush(timeout)


def current_dump_path() -> str | None:
    """The JSONL buffer file the running pipeline writes, if any."""
    return RUNTIME.dump_path if RUNTIME.buffer is not None else None


def transport_of(buffer):
    """The buffer's transport (the :class:`flowcept.transport.Transport` sink), or None without a store or queue."""
    from flowcept.transport import Transport

    for sink in getattr(buffer, "sinks", ()):
        if getattr(sink, "primary", False) and isinstance(sink, Transport):
            return sink
    return None


def acquire_keeper(settings, keep_alive: bool = False):
    """The process's keeper thread (started on first use); pair each call with :func:`release_keeper`.

    Args:
        keep_alive: run it as a non-daemon thread, so the process lives on after the main script ends until it is
            stopped or signalled (the spec's ``check_safe_stops=False`` persistence process).
    """
    from flowcept.keeper import Keeper

    rt = RUNTIME
    with rt.lock:
        keeper = rt.keeper
        if keeper is None:
            keeper = rt.keeper = Keeper(settings).start(daemon=not keep_alive)
            if keep_alive:
                _install_signal_flush(signal.SIGINT)
            _install_signal_flush(signal.SIGTERM)
        rt.keeper_users += 1
        return keeper


def release_keeper(keeper, timeout: float | None) -> None:
    """Drop one use of the keeper; the last user stops it (the batch in hand is finished and acknowledged)."""
    rt = RUNTIME
    with rt.lock:
        if rt.keeper is not keeper:
            return
        rt.keeper_users -= 1
        last = rt.keeper_users <= 0
        if last:
            rt.keeper = None
    if last:
        keeper.close(timeout)


def current_keeper():
    """The keeper running in this process, if any."""
    return RUNTIME.keeper


def _install_signal_flush(signum: int) -> None:
    """On SIGTERM (and SIGINT for a keep-alive keeper), flush what this process captured before it exits.

    Installed only from the main thread and only where the user has no handler of their own (the default one);
    after flushing, the previous handler runs, so the process still ends the way it would have.
    """
    if signum in RUNTIME.signals or threading.current_thread() is not threading.main_thread():
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
        RUNTIME.signals[signum] = previous
    except (ValueError, OSError):
        pass


def flush_for_exit() -> None:
    """Deliver every buffered record and stop the keeper after its current batch (signal and exit paths)."""
    from flowcept.settings import get_settings

    timeout = get_settings().buffer.stop_timeout_secs
    # Workflows still running end here (their end message is written): a signalled process, e.g. the spec's
    # persistence process ended by Ctrl+C or the job scheduler, is their normal end.
    for scope in reversed(list(RUNTIME.running_scopes)):
        owner = scope.owner
        if any(scope is inherited for inherited in RUNTIME.inherited_scopes):
            # A forked child's copy of its parent's workflow: deliver what this child captured into it, but the
            # parent ends it, not this child.
            try:
                scope.buffer.flush(timeout)
            except Exception as exc:  # noqa: BLE001
                logger.warning("flowcept: flushing at exit failed: %r", exc)
            continue
        if owner is not None and getattr(owner, "is_started", False):
            try:
                owner.stop()
            except Exception as exc:  # noqa: BLE001
                logger.warning("flowcept: stopping workflow %s at exit failed: %r", scope.workflow_id, exc)
    buffer, keeper = RUNTIME.buffer, current_keeper()
    if buffer is not None:
        try:
            buffer.flush(timeout)
        except Exception as exc:  # noqa: BLE001
            logger.warning("flowcept: flushing at exit failed: %r", exc)
    if keeper is not None:
        try:
            keeper.stop(timeout)
        except Exception as exc:  # noqa: BLE001
            logger.warning("flowcept: stopping the keeper at exit failed: %r", exc)
