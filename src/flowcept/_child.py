"""Processes started while a Flowcept runs join its workflow on their first capture, and leave it when it stops.

::

    parent  Flowcept.start() ── open_joining ──▶ join info published twice:
              · multiprocessing's process config, pickled into every Process started from now on (spawn,
                forkserver; with the parent task of the call that starts it and the parent's settings)
              · env FLOWCEPT_JOIN_WORKFLOW, inherited by `subprocess` children running Python
            and a join folder  <tmp>/flowcept-join-XXXX/open    the workflow still takes children
                                                      /<pid>    one per joined child still in it
    child   first capture finds no Flowcept ── join_parent_workflow ──▶ registers <pid>, starts
            Flowcept(workflow_id, campaign_id, save_workflow=False), a watcher thread, exit hooks (atexit,
            multiprocessing finalizer; in multiprocessing children a thread takes SIGTERM with sigwait, flushes,
            and ends the process)
    parent  Flowcept.stop() ── close_joining ──▶ removes `open`, waits for every joined child still alive to
            flush and leave (its <pid> file gone), counts the others as late, removes the folder
    child   the watcher sees `open` gone (or the parent gone) ──▶ stops its Flowcept (flush, leave): no capture
            into a stopped workflow; a call already running then is delivered when it ends

Forked multiprocessing children inherit the running scope itself; they only register, watch and flush the same way.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import pickle
import shutil
import signal
import tempfile
import threading
import time
from multiprocessing import process as _mp_process
from multiprocessing import util as _mp_util
from typing import Any

from flowcept.settings import ENV_JOIN_WORKFLOW

logger = logging.getLogger("flowcept")

_CONFIG_KEY = "flowcept_join_workflow"
_OPEN = "open"
_WATCH_EVERY_SECS = 0.1
# `name in os.environ` costs a microsecond (a KeyError inside); capture with no Flowcept running asks on every call.
_ENV_DATA = getattr(os.environ, "_data", None)
_ENV_KEY = os.environ.encodekey(ENV_JOIN_WORKFLOW) if _ENV_DATA is not None else None


class _ProcessJoinInfo:
    """The join info in multiprocessing's process config; each Process started copies it and pickles it into the
    child, taking the parent task of the thread that starts the process at that moment."""

    __slots__ = ("info", "settings", "handle")

    def __init__(self, info: dict, settings: bytes, handle: "JoinHandle"):
        self.info = info
        self.settings = settings
        self.handle = handle

    def __reduce__(self):
        from flowcept.context import get_parent_task_id

        # A plain dict in the child: unpickling a Process never needs flowcept, whatever happens later.
        return dict, ({**self.info, "settings": self.settings, "parent_task_id": get_parent_task_id()},)


class JoinHandle:
    """One controller's part in joining: what it published, its join folder, and in a child its membership."""

    def __init__(self, controller: Any, folder: str, owner_pid: int, member: bool):
        self.controller = controller
        self.pid = os.getpid()  # a forked child inherits this handle: only this process may close the folder
        self.folder = folder
        self.owner_pid = owner_pid
        self.member = member
        self.lock = threading.RLock()
        self.stopped = threading.Event()
        self.hold = None  # a member's extra use of the buffer: records of calls running at leave still go out
        self._previous: JoinHandle | None = None  # the publisher this one replaced, in this process
        self._env_value: str | None = None
        self._config_value: _ProcessJoinInfo | None = None

    @property
    def pid_file(self) -> str:
        return os.path.join(self.folder, str(os.getpid()))

    def publish(self) -> None:
        """Tell the processes started from now on where to join."""
        c = self.controller
        info = {"workflow_id": c.workflow_id, "campaign_id": c.campaign_id, "dir": self.folder,
                "owner_pid": self.owner_pid}
        config = _mp_process.current_process()._config
        previous = config.get(_CONFIG_KEY)
        self._previous = previous.handle if isinstance(previous, _ProcessJoinInfo) else None
        self._env_value = json.dumps({**info, "from_pid": os.getpid()})
        self._config_value = _ProcessJoinInfo(info, pickle.dumps(c.settings), self)
        self._install()

    def _install(self) -> None:
        os.environ[ENV_JOIN_WORKFLOW] = self._env_value
        _mp_process.current_process()._config[_CONFIG_KEY] = self._config_value

    def unpublish(self) -> None:
        """Processes started from now on no longer join this workflow: they join the newest workflow still
        running in this process that published before it, or none (controllers may stop in any order)."""
        config = _mp_process.current_process()._config
        if config.get(_CONFIG_KEY) is not self._config_value:
            return  # a later controller published since; it restores past this one when it stops
        previous = self._previous
        while previous is not None and previous.stopped.is_set():
            previous = previous._previous
        if previous is not None:
            previous._install()
        else:
            config.pop(_CONFIG_KEY, None)
            if os.environ.get(ENV_JOIN_WORKFLOW) == self._env_value:
                os.environ.pop(ENV_JOIN_WORKFLOW, None)

    def leave(self) -> None:
        """A member stops its Flowcept (flush, leave the workflow); safe from the watcher and from exit hooks."""
        with self.lock:
            if self.controller.is_started:
                try:
                    self.controller.stop()
                except Exception as exc:  # noqa: BLE001 - exit paths and the watcher never raise
                    logger.warning("flowcept: child process %d could not flush workflow %s: %r", os.getpid(),
                                   self.controller.workflow_id, exc)

    def leave_at_exit(self) -> None:
        """Exit hook of a member: leave, then deliver what calls still running at leave captured."""
        from flowcept import _runtime

        with _sigterm_deferred():
            self.leave()
            with self.lock:
                hold, self.hold = self.hold, None
            if hold is not None:
                _runtime.release_buffer(hold, self.controller.settings.buffer.stop_timeout_secs)


@contextlib.contextmanager
def _sigterm_deferred():
    """Hold SIGTERM back while the main thread flushes at exit, then deliver it.

    ``Pool.terminate()`` signals workers that may already be exiting; the flush-on-SIGTERM handler would run on
    top of this thread's own flush, inside the buffer's locks, and wait forever for them.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list = []
    try:
        previous = signal.signal(signal.SIGTERM, lambda signum, frame: caught.append(signum))
    except (ValueError, OSError):
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        if caught:
            signal.raise_signal(signal.SIGTERM)


@contextlib.contextmanager
def _signals_blocked():
    """Threads started inside inherit a mask without SIGTERM and SIGINT, so the kernel delivers those to the main
    thread: a worker blocked in ``SimpleQueue.get`` is then interrupted and runs the flush-on-SIGTERM handler, instead
    of the signal landing on a flowcept thread while the main thread sleeps on, and ``Pool.terminate()`` waits forever.
    """
    try:
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    except (AttributeError, OSError, ValueError):  # pragma: no cover - no pthread_sigmask on this platform
        yield
        return
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _take_sigterm_in_a_thread(leave) -> None:
    """In a multiprocessing child, SIGTERM (``Pool.terminate()``, the end of ``with Pool(...)``) is taken by a thread
    of ours with ``sigwait``: it flushes, then ends the process.

    A Python-level handler is not enough there: a worker blocked on the task queue's semaphore while other threads
    run sometimes never wakes up to run it (seen with forkserver pools, without flowcept too), and the pool's
    terminate then waits forever. Called from the main thread, which keeps SIGTERM blocked from now on.
    """
    if threading.current_thread() is not threading.main_thread():
        return
    try:
        with _signals_blocked():
            threading.Thread(target=_await_sigterm, args=(leave,), name="flowcept-sigterm", daemon=True).start()
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    except (AttributeError, OSError, ValueError, RuntimeError):  # pragma: no cover - no sigwait here
        pass


def _await_sigterm(leave) -> None:
    signal.sigwait({signal.SIGTERM})
    try:
        leave()
    finally:
        os._exit(128 + signal.SIGTERM)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: someone else's process of that id is alive; treat as alive (the safe side)
        return True
    return True


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass


# ---- parent side (and every controller, joined ones included, so grandchildren join too) --------------------
def open_joining(controller: Any) -> JoinHandle | None:
    """Publish ``controller``'s workflow to the processes it starts; None when joining is off or failed.

    Called by ``Flowcept.start()`` once its scope is entered.
    """
    if not controller.settings.instrumentation.join_child_processes:
        return None
    member = getattr(controller, "_join_member", None)
    try:
        if member is not None:
            handle = JoinHandle(controller, member["dir"], member["owner_pid"], member=True)
        else:
            folder = tempfile.mkdtemp(prefix="flowcept-join-")
            with open(os.path.join(folder, _OPEN), "x"):
                pass
            handle = JoinHandle(controller, folder, os.getpid(), member=False)
        handle.publish()
    except Exception as exc:  # noqa: BLE001 - capture never breaks the user's program
        logger.warning("flowcept: child processes will not join workflow %s: %r", controller.workflow_id, exc)
        return None
    if member is not None:
        _start_watcher(handle, handle.leave)
    # Forked multiprocessing children inherit the running scope itself; they register as members too.
    _mp_util.register_after_fork(handle, _adopt_in_forked_child)
    return handle


def close_joining(handle: JoinHandle | None, deadline: float) -> tuple[int, int]:
    """Stop taking children and wait, until half the time left before ``deadline``, for the joined ones still alive
    to flush and leave. Called by ``Flowcept.stop()`` before it flushes its own records.

    Returns:
        ``(running, late)``: joined children alive at this stop, and children whose flush could not be confirmed
        (still running when the wait ended, or ended without leaving: killed).
    """
    if handle is None:
        return 0, 0
    if handle.pid != os.getpid():  # a forked child stopping its copy of the parent's controller (SIGTERM)
        _remove(os.path.join(handle.folder, str(os.getpid())))
        return 0, 0
    handle.unpublish()
    handle.stopped.set()
    if handle.member:
        # Leave only once what this child captured is delivered: the owner's stop goes on when the file is gone.
        buffer = handle.controller._buffer
        if buffer is not None:
            buffer.flush(max(0.0, deadline - time.monotonic()))
        _remove(handle.pid_file)
        return 0, 0
    folder = handle.folder
    _remove(os.path.join(folder, _OPEN))
    members = set(_members(folder))
    running = {pid for pid in members if _alive(pid)}
    ended = members - running  # ended without leaving (a child removes its file before it exits): killed
    wait_until = time.monotonic() + max(0.0, deadline - time.monotonic()) / 2
    waiting = set(running)
    while waiting and time.monotonic() < wait_until:
        time.sleep(0.02)
        left = set(_members(folder))
        ended |= {pid for pid in waiting & left if not _alive(pid)}
        waiting = {pid for pid in waiting & left if pid not in ended}
    late = len(waiting) + len(ended)
    shutil.rmtree(folder, ignore_errors=True)
    if late:
        logger.warning("flowcept: %d child process(es) of workflow %s did not confirm their records before stop() "
                       "returned (still running, or killed); what they captured may arrive late or not at all",
                       late, handle.controller.workflow_id)
    return len(running), late


def _members(folder: str) -> list[int]:
    try:
        return [int(name) for name in os.listdir(folder) if name.isdigit()]
    except OSError:
        return []


# ---- child side ---------------------------------------------------------------------------------------------
def join_parent_workflow():
    """The scope of the workflow that started this process, joined now; None when there is none to join.

    Called by capture when it finds no running Flowcept; costs about 0.3 µs when there is nothing to join.
    """
    config = _mp_process.current_process()._config
    info = config.get(_CONFIG_KEY)
    if info is None:
        # A multiprocessing child started while no Flowcept ran: a forkserver's environment may be stale.
        if _mp_process.parent_process() is not None:
            return None
        if (_ENV_KEY not in _ENV_DATA) if _ENV_DATA is not None else (ENV_JOIN_WORKFLOW not in os.environ):
            return None
    elif type(info) is not dict:
        return None  # this process publishes it (a stop or start is under way): nothing to join
    from flowcept._runtime import RUNTIME

    with RUNTIME.lock:  # one join per process, even when several threads capture first at once
        if RUNTIME.running_scopes:
            return RUNTIME.running_scopes[-1]
        info = config.pop(_CONFIG_KEY, None)
        raw = os.environ.pop(ENV_JOIN_WORKFLOW, None) if info is None else None
        try:
            if info is None:
                info = json.loads(raw) if raw else None
                if not isinstance(info, dict) or info.get("from_pid") == os.getpid():
                    return None
            return _join(info)
        except Exception as exc:  # noqa: BLE001 - capture never breaks the user's program
            from flowcept._internal_errors import report_internal_error

            report_internal_error("joining the parent's workflow", exc)
            return None


def _join(info: dict):
    from flowcept import _runtime, context
    from flowcept.controller import Flowcept

    folder, owner_pid = str(info["dir"]), int(info["owner_pid"])
    pid_file = os.path.join(folder, str(os.getpid()))
    try:
        os.close(os.open(pid_file, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600))
    except OSError:
        return None  # the folder is gone: that workflow has stopped
    # Registered first, checked second: a stop that removed `open` after this check still sees our file.
    if not os.path.exists(os.path.join(folder, _OPEN)) or not _alive(owner_pid):
        _remove(pid_file)
        return None
    if info.get("settings"):
        from flowcept.settings import use_settings

        use_settings(pickle.loads(info["settings"]))
    controller = Flowcept(workflow_id=str(info["workflow_id"]), campaign_id=info.get("campaign_id"),
                          save_workflow=False, start_persistence=False, delete_buffer_file=False)
    controller._join_member = {"dir": folder, "owner_pid": owner_pid}
    with _signals_blocked():
        controller.start()
        handle = controller._joining
        if not controller.is_started or handle is None:
            controller.stop()
            _remove(pid_file)
            return None
        handle.hold = _runtime.acquire_buffer(controller.settings, controller.workflow_id)
        handle.hold.flush(0)  # starts the flusher thread now, with the mask above
    # multiprocessing children end with os._exit (finalizers run, atexit does not); others end through atexit.
    _mp_util.Finalize(None, handle.leave_at_exit, exitpriority=200)
    atexit.register(handle.leave_at_exit)
    if _mp_process.parent_process() is not None:
        _take_sigterm_in_a_thread(handle.leave_at_exit)
    if info.get("parent_task_id"):
        context.set_parent_task_id(str(info["parent_task_id"]))
    return controller._scope


def _adopt_in_forked_child(handle: JoinHandle) -> None:
    """In a forked multiprocessing child: register with the workflow it inherited, and leave it when it stops."""
    from flowcept import context

    scope = handle.controller._scope
    if handle.stopped.is_set() or scope is None or not scope.active:
        return
    pid_file = os.path.join(handle.folder, str(os.getpid()))

    def leave() -> None:
        context.exit_scope(scope)
        try:
            scope.buffer.flush(handle.controller.settings.buffer.stop_timeout_secs)
        finally:
            _remove(pid_file)

    try:
        os.close(os.open(pid_file, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600))
    except OSError:
        context.exit_scope(scope)  # the workflow stopped while this child was being forked
        return
    if not os.path.exists(os.path.join(handle.folder, _OPEN)):
        _remove(pid_file)
        context.exit_scope(scope)
        return
    # The buffer's own finalizer (priority 100) flushes first; then this child has left.
    _mp_util.Finalize(None, _remove, args=(pid_file,), exitpriority=50)
    with _signals_blocked():
        scope.buffer.flush(0)  # the flusher thread restarts now, with the mask (see _signals_blocked)
        _start_watcher(handle, leave)
    _take_sigterm_in_a_thread(leave)


def _start_watcher(handle: JoinHandle, leave) -> None:
    threading.Thread(target=_watch, args=(handle.folder, handle.owner_pid, handle.stopped, leave),
                     name="flowcept-join-watcher", daemon=True).start()


def _watch(folder: str, owner_pid: int, stopped: threading.Event, leave) -> None:
    """A member's watcher: leave when the owner stops its workflow or is gone."""
    from flowcept.context import suppress_capture

    suppress_capture()
    is_open = os.path.join(folder, _OPEN)
    while not stopped.wait(_WATCH_EVERY_SECS):
        if not os.path.exists(is_open) or not _alive(owner_pid):
            leave()
            return
