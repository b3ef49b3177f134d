"""``FlowceptLoop`` and ``FlowceptLightweightLoop``: one task record per loop iteration.

Both iterate through a generator whose ``finally`` runs when the loop ends, is left with ``break`` (the ``for``
statement drops the generator, which closes it) or is left by an exception, so the iterations that ran are always
recorded. (A lightweight loop over a range, or a tuple of numbers and strings, hands the ``for`` statement a
``chain`` of its chunks' C iterators, fed by that generator: dropping the chain drops the generator.) Python does
not tell a closing generator whether it is closed by ``break`` or by an exception unwinding the caller, so an
interrupted iteration is recorded ``FINISHED`` with ``custom_metadata={"interrupted": True}``.

Capture is decided when iteration starts (``iter(loop)``): no running Flowcept, ``capture_enabled=False`` or
``instrumentation.enabled: false`` make the loop a plain iterator and :meth:`end_iter` a no-op.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator, Sized
from itertools import chain, repeat
from typing import Any

from flowcept import context as _ctx
from flowcept._internal_errors import report_internal_error
from flowcept.buffer import emit_inline
from flowcept.capture._codegen import compile_function
from flowcept._runtime import hostname
from flowcept.capture._builder import end_telemetry, telemetry_sampler
from flowcept.ids import new_id
from flowcept.serialize import IMMUTABLE_TYPES, snapshot, snapshot_expression, snapshot_values

logger = logging.getLogger("flowcept")

_parent_var = _ctx._parent_task


def _capture_allowed(capture_enabled: bool) -> bool:
    if not capture_enabled:
        return False
    from flowcept.settings import get_settings

    return bool(get_settings().instrumentation.enabled)


def _active_scope(capture_enabled: bool):
    """The scope to record into, or None when this loop must run as a plain iterator."""
    if not capture_enabled:
        return None
    scope = _ctx.current_scope()
    if scope is None or not scope.settings.instrumentation.enabled:
        return None
    return scope


def _deliver(scope, records: list) -> None:
    # A generator closed after its Flowcept stopped (e.g. kept alive past the `with` block) has nowhere to go.
    if scope.active:
        scope.buffer.extend(records)
    else:
        report_internal_error("loop iteration recorded after Flowcept stopped", RuntimeError(
            f"{len(records)} loop iteration record(s) dropped: the loop was closed after its Flowcept stopped"))


class FlowceptLoop:
    """Iterate over ``items`` recording each iteration as a task (``subtype: "iteration"``).

    Each record carries ``used = {"i": i, <item_name>: item}``, ``generated`` from :meth:`end_iter`, ``started_at``,
    ``ended_at``, ``status`` and, when telemetry capture is on, ``telemetry_at_end``. Records are appended as each
    iteration ends. While an iteration's body runs, tasks captured in it (decorated functions, inner loops) get the
    iteration as their parent.

    Args:
        items: a sized iterable, an int (``range(items)``) or an iterator. An iterator without ``items_length`` is
            read into a list first (with a warning).
        loop_name: ``activity_id`` is ``<loop_name>_iteration``.
        item_name: key of the item in ``used``.
        parent_task_id: parent of every iteration; default: the task enclosing the loop when iteration starts.
        workflow_id: workflow of the records; default: the running Flowcept's.
        items_length: the number of items of an iterator (avoids reading it into a list).
        capture_enabled: False makes this a plain iterator.
        capture_telemetry: True/False forces end-of-iteration telemetry on or off for this loop (None: follow the
            settings); True with telemetry off in the settings records a CPU/memory snapshot.

    Raises:
        TypeError: ``items`` is not iterable.
    """

    def __init__(self, items: Iterable | int, loop_name: str = "loop", item_name: str = "item",
                 parent_task_id: str | None = None, workflow_id: str | None = None, items_length: int = 0,
                 capture_enabled: bool = True, capture_telemetry: bool | None = None):
        self.loop_name = loop_name
        self.capture_telemetry = capture_telemetry
        self.item_name = item_name
        self.parent_task_id = parent_task_id
        self.workflow_id = workflow_id
        self.capture_enabled = capture_enabled
        self.group_id: str | None = None
        self._current: dict | None = None
        self._items, self._len = self._resolve_items(items, items_length)

    def _resolve_items(self, items, items_length: int):
        if isinstance(items, bool) or not (isinstance(items, (int, Iterable))):
            raise TypeError(f"{type(self).__name__} needs a sized iterable, an int or an iterator, "
                            f"not {type(items).__name__}")
        if isinstance(items, int):
            return range(items), max(items, 0)
        if isinstance(items, Sized):
            return items, len(items)
        if items_length:
            return items, int(items_length)
        if not _capture_allowed(self.capture_enabled):
            return items, None
        logger.warning("%s(loop_name=%r) got an iterator without items_length: reading it into a list first. "
                       "Pass items_length=... to avoid this.", type(self).__name__, self.loop_name)
        items = list(items)
        return items, len(items)

    def __len__(self) -> int:
        if self._len is None:
            raise TypeError(f"{type(self).__name__} over an iterator without items_length has no len()")
        return self._len

    def get_current_iteration_id(self) -> str | None:
        """Task id of the iteration running now (None outside the loop or when capture is off)."""
        cur = self._current
        return cur["task_id"] if cur is not None else None

    def end_iter(self, generated: dict) -> None:
        """Attach ``generated`` (a dict of values produced by this iteration) to the current iteration."""
        cur = self._current
        if cur is not None:
            try:
                values = {**generated}
            except TypeError:
                values = _pairs(generated)
            cur["generated"] = snapshot_values(values)

    def __iter__(self) -> Iterator:
        scope = _active_scope(self.capture_enabled)
        if scope is None:
            return iter(self._items)
        return self._capture(scope)

    def _on_iteration(self, task_id: str) -> None:
        """Hook called as each iteration starts (the torch loops point the model at the iteration)."""

    def _capture(self, scope) -> Iterator:
        buffer = scope.buffer
        parent_var = _parent_var
        sampler = scope.telemetry if self.capture_telemetry is None else \
            telemetry_sampler(scope, self.capture_telemetry)
        hook = self._on_iteration if type(self)._on_iteration is not FlowceptLoop._on_iteration else None
        group = self.group_id = new_id()
        id_prefix = group + "_"
        outer = parent_var.get()
        # The fields every iteration shares, built once (None ones left out: the records carry no nulls).
        static = {"type": "task", "workflow_id": self.workflow_id or scope.workflow_id,
                  "campaign_id": scope.campaign_id, "activity_id": f"{self.loop_name}_iteration",
                  "group_id": group, "subtype": "iteration", "parent_task_id": self.parent_task_id or outer,
                  "hostname": hostname()}
        static = {k: v for k, v in static.items() if v is not None}
        return _iterations(self, scope, self._items, buffer, static, id_prefix, outer, sampler, hook,
                           self.item_name)


# One iteration's cost is the loop's product, so the buffer's emit is inlined (its source is buffer.py's) into
# this generator, compiled once at import.
_ITERATIONS_SOURCE = """
def _fc_iterations(loop, scope, items, buffer, static, id_prefix, outer, sampler, hook, item_name):
    clock, parent_set = _fc_clock, _fc_parent_set
    rec = None
    try:
        for i, item in enumerate(items):
            tid = id_prefix + str(i)
            rec = loop._current = {
                **static, "task_id": tid,
                "used": {"i": i, item_name: @ITEM@},
                "started_at": clock(),
            }
            parent_set(tid)
            if hook is not None:
                hook(tid)
            yield item
            rec["ended_at"] = clock()
            rec["status"] = "FINISHED"
            if sampler is not None:
                _fc_end_telemetry(rec, sampler)
            @EMIT@
            rec = None
    finally:
        parent_set(outer)
        loop._current = None
        if rec is not None:
            # Left by break or an exception while this iteration ran: still record it.
            rec["ended_at"] = clock()
            rec["status"] = "FINISHED"
            rec["custom_metadata"] = {"interrupted": True}
            _fc_deliver(scope, [rec])
""".replace("@EMIT@", emit_inline("buffer", "rec", " " * 12)).replace("@ITEM@", snapshot_expression("item"))


_iterations = compile_function(_ITERATIONS_SOURCE, "_fc_iterations", "FlowceptLoop iterations", {
    "_fc_clock": time.time, "_fc_parent_set": _parent_var.set, "_fc_immutable": IMMUTABLE_TYPES,
    "_fc_snapshot": snapshot, "_fc_end_telemetry": end_telemetry, "_fc_deliver": _deliver})


class FlowceptLightweightLoop(FlowceptLoop):
    """Like :class:`FlowceptLoop` at the lowest cost: no timestamps, no telemetry, one batched append.

    Iterations only keep their items and :meth:`end_iter` dicts; the records (``used``, ``generated``,
    ``status: FINISHED``, ids, parent) are built and appended in one call when the loop ends or is left early.
    Tasks captured inside the body are not re-parented to the iteration.

    Raises:
        TypeError: ``items`` is an iterator and ``items_length`` is not given (its length must be known).
    """

    def _resolve_items(self, items, items_length: int):
        if isinstance(items, bool) or not (isinstance(items, (int, Iterable))):
            raise TypeError(f"{type(self).__name__} needs a sized iterable, an int or an iterator with "
                            f"items_length, not {type(items).__name__}")
        if isinstance(items, int):
            return range(items), max(items, 0)
        if items_length:
            return items, int(items_length)
        if isinstance(items, Sized):
            return items, len(items)
        raise TypeError(f"FlowceptLightweightLoop(loop_name={self.loop_name!r}) got an iterator without a known "
                        f"length: pass items_length=<number of items> (or use FlowceptLoop).")

    def __init__(self, *args: Any, **kwargs: Any):
        self._run: _Run | None = None  # while iterating: where the loop is, and the end_iter dicts of its chunk
        super().__init__(*args, **kwargs)

    def get_current_iteration_id(self) -> str | None:
        run = self._run
        if run is None:
            return None
        i = run.start + run.index()
        return f"{self.group_id}_{i}" if i >= 0 else None

    def end_iter(self, generated: dict) -> None:
        """Attach ``generated`` to the current iteration (replaced while the loop runs by its run's ``end_iter``)."""

    def _capture(self, scope) -> Iterator:
        # Records are built and queued every CHUNK iterations (and when the loop ends or is left), so memory stays
        # bounded whatever the loop's length: the buffer's backpressure paces a loop that outruns the store.
        self.group_id = new_id()
        parent = self.parent_task_id or _parent_var.get()
        items = self._items
        hook = self._on_iteration if type(self)._on_iteration is not FlowceptLoop._on_iteration else None
        run = self._run = _Run()
        self.end_iter = run.end_iter
        # The fast path reads its chunks ahead and records their items when a chunk ends: only a range, or a tuple of
        # numbers and strings, can neither change under the loop's body nor be changed by it. A list goes through
        # its own iterator, as a plain `for` does (a list that grows while the loop runs has its new items run).
        if hook is None and (type(items) is range or type(items) is tuple and _ATOMIC.issuperset(map(type, items))):
            return chain.from_iterable(self._chunks(scope, items, parent, run))
        return self._iterate(scope, items, parent, hook, run)

    def _chunks(self, scope, items, parent: str | None, run: _Run) -> Iterator:
        """The fast path: the C iterators of the chunks, one after the other (``chain`` runs the items without a
        Python step). The chain asks for the next chunk when one is done, and drops this generator, which closes it,
        when the loop is left; each chunk's length hint tells how far it got."""
        total = len(items)
        start, size, part, hint = 0, 0, (), None
        try:
            while start < total:
                part = items[start:start + CHUNK]
                size = len(part)
                it = iter(part)
                hint = run.count(start, size, it)
                yield it
                self._publish(scope, part, start, run.generated, parent, True)
                start += size
                hint = None
        finally:
            self._stop_run()
            ran = size - hint() if hint is not None else 0
            if ran:
                self._publish(scope, part[:ran], start, run.generated, parent, False)

    def _iterate(self, scope, items, parent: str | None, hook, run: _Run) -> Iterator:
        """Any iterable, or a loop with an iteration hook: one Python step per item, counted by a range iterator that
        ``zip`` advances before each item (it stops the chunk after CHUNK items without reading one more)."""
        seen: list = []  # the chunk's items as each iteration started (snapshotted: the body may change them)
        offset = 0
        group = self.group_id
        complete = False
        immutable, snapshot_ = IMMUTABLE_TYPES, snapshot
        try:
            items = iter(items)
            while True:
                counter = iter(range(CHUNK))
                run.count(offset, CHUNK, counter)
                for _, item in zip(counter, items):
                    if hook is not None:
                        hook(f"{group}_{offset + len(seen)}")
                    seen.append(item if type(item) in immutable or (type(item) is float and item - item == 0.0)
                                else snapshot_(item))
                    yield item
                if len(seen) < CHUNK:
                    break
                self._publish(scope, seen, offset, run.generated, parent, True, taken=True)
                offset += CHUNK
                seen = []
            complete = True
        except GeneratorExit:  # left while an iteration ran: break, or an exception in the loop's body
            raise
        except BaseException:  # the items or the hook raised between iterations: the last one had ended
            complete = True  # (as FlowceptLoop records it)
            raise
        finally:
            self._stop_run()
            if seen:
                self._publish(scope, seen, offset, run.generated, parent, complete, taken=True)

    def _stop_run(self) -> None:
        self._run = None
        self.__dict__.pop("end_iter", None)

    def _publish(self, scope, items, offset: int, generated: list, parent: str | None, complete: bool,
                 taken: bool = False) -> None:
        """Queue the records of ``items``, the iterations from ``offset`` on, with ``generated`` (their end_iter
        dicts, in order; None where end_iter was not called); ``taken``: the items are snapshotted already."""
        try:
            records = self._records(scope, items, offset, generated, parent, taken)
            if not complete:
                records[-1]["custom_metadata"] = {"interrupted": True}
        except Exception as exc:  # noqa: BLE001
            report_internal_error("building loop records", exc)
        else:
            _deliver(scope, records)

    def _records(self, scope, items, offset: int, generated: list, parent: str | None, taken: bool) -> list:
        n = len(items)
        given = generated[:n]  # (the list's last slot is not an iteration's: see _Run.count)
        every = all(given)  # an empty dict counts as missing here: the other path attaches it
        present = given if every else [g for g in given if g is not None]
        static = {"type": "task", "workflow_id": self.workflow_id or scope.workflow_id,
                  "campaign_id": scope.campaign_id, "activity_id": f"{self.loop_name}_iteration",
                  "group_id": self.group_id, "subtype": "iteration", "status": "FINISHED", "parent_task_id": parent}
        base = {k: v for k, v in static.items() if v is not None}
        # The keys filled in below are in the copies already, so that filling them replaces a value.
        base.update(dict.fromkeys(("task_id", "used", "generated") if every else ("task_id", "used")))
        # Every dict is made first, while none holds another (the cyclic GC does not track them yet): the
        # collections that making them sets off have no record to scan.
        records = list(map(dict.copy, repeat(base, n)))
        item_name = self.item_name
        if taken or type(items) is range:  # snapshotted as each iteration started, or ints
            used = [{"i": i, item_name: item} for i, item in enumerate(items, offset)]
        else:
            # A tuple of numbers and strings: floats checked here for NaN and infinities.
            immutable = IMMUTABLE_TYPES
            used = [{"i": i, item_name: item if type(item) in immutable or (
                type(item) is float and item - item == 0.0) else snapshot(item)}
                for i, item in enumerate(items, offset)]
        prefix = self.group_id + "_"
        indexes = range(offset, offset + n)
        if every:
            for rec, i, u, g in zip(records, indexes, used, given):
                rec["task_id"] = prefix + str(i)
                rec["used"] = u
                rec["generated"] = g
            return records
        for rec, i, u in zip(records, indexes, used):
            rec["task_id"] = prefix + str(i)
            rec["used"] = u
        if present:
            for rec, g in zip(records, given):
                if g is not None:
                    rec["generated"] = g
        return records


class _Run:
    """One run of a lightweight loop: the running iteration's place, and the ``end_iter`` dicts of its chunk.

    The running iteration is ``index()`` in the chunk that starts at iteration ``start``: the iterator counting the
    chunk's iterations (set by :meth:`count`) has ``hint()`` left of ``top + 1``. Reading it costs one C call, so
    the loop itself takes no step to keep count."""

    __slots__ = ("start", "top", "hint", "generated")

    def __init__(self):
        self.start, self.top, self.hint = 0, -1, int  # int() is 0: no iteration runs yet
        # The chunk's end_iter dicts by index in the chunk (None: not called), and one slot more (see count).
        self.generated: list = [None]

    def count(self, start: int, size: int, iterator: Iterator) -> Any:
        """Count a chunk of ``size`` iterations from ``start`` with ``iterator`` (unstarted); returns its length
        hint."""
        self.start, self.top, self.hint = start, size - 1, iterator.__length_hint__
        # One slot more than the chunk has iterations: end_iter before the first one (index -1) lands there, and is
        # not read (see _records).
        self.generated = [None] * (size + 1)
        return self.hint

    def index(self) -> int:
        """The running iteration's index in its chunk (-1 before the first)."""
        return self.top - self.hint()

    def end_iter(self, values: dict) -> None:
        """Keep ``values`` as they are now, as FlowceptLoop takes them: a dict reused or changed by later iterations
        must not end up in its record as its later state. A copy holding only values that cannot change (numbers,
        strings; finite floats) is kept as it is; any other (a list, an array, NaN) is snapshotted now."""
        try:
            copy = {**values}
        except TypeError:
            copy = _pairs(values)
        try:
            for key in copy:  # the keys, not a values view: one object less to make
                value = copy[key]
                if type(value) not in IMMUTABLE_TYPES and not (type(value) is float and value - value == 0.0):
                    copy = snapshot_values(copy)
                    break
        except Exception:  # noqa: BLE001 - a key whose hash changed since it was inserted: not found again
            copy = snapshot_values(copy)  # (which reads the values, not the keys)
        self.generated[self.top - self.hint()] = copy


def _pairs(values: Any) -> dict:
    """An ``end_iter`` argument that is not a mapping: key-value pairs, as ``dict()`` takes them, or a TypeError that
    says what to pass."""
    try:
        return dict(values)
    except (TypeError, ValueError):
        raise TypeError(f"end_iter() takes a dict of the values the iteration produced (e.g. {{'loss': 0.1}}), "
                        f"not {type(values).__name__}") from None


#: Iterations of a FlowceptLightweightLoop whose records are built and queued at once.
CHUNK = 4096
#: Item types the fast path records when a chunk ends (values that cannot change; floats checked then).
_ATOMIC = IMMUTABLE_TYPES | {float}
