"""Event-time windowing of one partition: watermark, grace, lateness, closing, triggers.

Pure computation, no Kafka: :class:`WindowEngine` takes decoded events in partition
order and keeps its state in a :class:`~consumers.windows.state.WindowStore`, so the
processor can persist and restore it and the unit tests can check it against a
brute-force oracle.

Rules, for a window ``[start, end)`` and grace ``G``:

1. the partition's **watermark** is the largest event timestamp seen so far,
   including the event being added;
2. an event joins each of its windows whose ``end + G`` is still above the
   watermark; an event that joins none is **late** (``add`` returns ``False``);
3. a window **closes** (is emitted final, then purged) as soon as the watermark
   reaches ``end + G``. Windows closed by one event are emitted ordered by
   ``(end, key, start)``.

Sliding windows keep one state per key and distinct timestamp ``t`` (a *bucket*); the
window of ``t`` is ``[t - size + 1, t + 1)``, computed at close by merging the buckets
it covers. An event is accepted iff its own window is open, which guarantees every
later window that covers it is open too; buckets are purged once no open or future
window can cover them (watermark > ``t + size + G``).

Session windows are kept by a :class:`~consumers.windows.sessions.SessionIndex`: an
event is accepted iff the watermark is below ``t + 1 + grace``; it then grows, starts
or merges its key's sessions, and a session closes once the watermark reaches
``end + gap + grace``.

With a ``threshold``, every window an event changes is shown to the
:class:`~consumers.windows.trigger.ThresholdTrigger` (once per burst, see there).
"""

from __future__ import annotations

import bisect
import heapq
from collections import defaultdict
from dataclasses import dataclass

from agent_events.agent_runtime.errors import ConfigError
from agent_events.agent_runtime.events import SystemEvent
from agent_events.consumers.windows.aggregations import (
    Aggregations,
    KeyFunction,
    WindowState,
    WindowValues,
    event_time_ms,
)
from agent_events.consumers.windows.definitions import (
    SessionWindow,
    SlidingWindow,
    WindowDefinition,
)
from agent_events.consumers.windows.sessions import SessionIndex
from agent_events.consumers.windows.state import EntryKey, WindowStore
from agent_events.consumers.windows.trigger import ThresholdAlert, ThresholdTrigger

__all__ = ["WindowEngine", "WindowResult"]

_NO_SESSION_THRESHOLD = (
    "threshold alerts count events in windows of a fixed size; use a tumbling, hopping "
    "or sliding window with alert_threshold, not a session window"
)


@dataclass(frozen=True, slots=True)
class WindowResult:
    """One window's aggregates; ``final`` once it is closed, else an emit-on-update value."""

    key: str
    start_ms: int
    end_ms: int
    values: WindowValues
    final: bool


class WindowEngine:
    """Windows of one partition; its state lives in ``store`` (restored or empty).

    ``auto_watermark`` (default): each event advances the watermark, rule 1 above.
    Without it the watermark moves only through :meth:`advance`.
    """

    def __init__(
        self,
        definition: WindowDefinition,
        aggregations: Aggregations,
        store: WindowStore,
        *,
        key_of: KeyFunction,
        threshold: int | None = None,
        emit_on_update: bool = False,
        auto_watermark: bool = True,
    ) -> None:
        self.definition = definition
        self.auto_watermark = auto_watermark
        self.aggregations = aggregations
        self.store = store
        self.key_of = key_of
        self.threshold = threshold
        self.emit_on_update = emit_on_update
        self.closed: list[WindowResult] = []
        self.trigger: ThresholdTrigger | None = None
        self._sessions: SessionIndex | None = None
        if isinstance(definition, SessionWindow):
            if threshold is not None:
                raise ConfigError(_NO_SESSION_THRESHOLD)
            self._sessions = SessionIndex(definition, aggregations, store)
        elif threshold is not None:
            self.trigger = ThresholdTrigger(
                threshold, definition.size_ms, definition.grace_ms, store
            )
        self._grace = definition.grace_ms
        self._size = 0 if isinstance(definition, SessionWindow) else definition.size_ms
        self._sliding = isinstance(definition, SlidingWindow)
        self._fixed = None if isinstance(definition, SlidingWindow | SessionWindow) else definition
        # tumbling/hopping: end -> {(key, start)}, with a heap of the ends
        self._by_end: dict[int, set[tuple[str, int]]] = defaultdict(set)
        self._ends: list[int] = []
        # sliding: key -> sorted bucket timestamps; heaps of buckets to close / to purge
        self._buckets: dict[str, list[int]] = {}
        self._to_close: dict[int, set[str]] = defaultdict(set)
        self._close_heap: list[int] = []
        self._to_purge: dict[int, set[str]] = defaultdict(set)
        self._purge_heap: list[int] = []
        self._updated: set[EntryKey] = set()
        self._rebuild_indexes()

    @property
    def watermark(self) -> int | None:
        """The largest event timestamp (ms) this partition has seen, or ``None``."""
        return self.store.watermark

    # ------------------------------------------------------------------ processing

    def add(self, event: SystemEvent, *, upstream_watermark: int | None = None) -> bool:
        """Add one event (in partition order); ``False`` if it was late for every window.

        With ``auto_watermark`` the event first advances the watermark (rule 1);
        otherwise only :meth:`advance` moves it. ``upstream_watermark`` is the
        watermark of the partition the event came from (after a repartition): the
        event joins only windows still open by that watermark too, so lateness is
        judged in the order of its own partition, whatever the interleaving.
        """
        ts = event_time_ms(event)
        store = self.store
        if self.auto_watermark and (store.watermark is None or ts > store.watermark):
            store.watermark = ts
        wm = store.watermark
        judge = (
            wm
            if upstream_watermark is None or (wm is not None and wm > upstream_watermark)
            else upstream_watermark
        )
        if self._sessions is not None:
            accepted = self._add_session(event, ts, judge)
        elif self._sliding:
            accepted = self._add_sliding(event, ts, judge)
        else:
            accepted = self._add_fixed(event, ts, judge)
        if wm is not None:
            self._close(wm)
        return accepted

    def advance(self, watermark: int) -> None:
        """Move the watermark to ``watermark`` (never back) and close what it passes.

        Used when the watermark comes from elsewhere: after a repartition, the
        smallest watermark of the upstream partitions.
        """
        store = self.store
        if store.watermark is None or watermark > store.watermark:
            store.watermark = watermark
            self._close(watermark)

    def take_closed(self) -> list[WindowResult]:
        """Windows closed since the last call, in closing order (already purged)."""
        closed, self.closed = self.closed, []
        return closed

    def take_alerts(self) -> list[ThresholdAlert]:
        """Alerts fired since the last call."""
        if self.trigger is None:
            return []
        alerts, self.trigger.alerts = self.trigger.alerts, []
        return alerts

    def take_updates(self) -> list[WindowResult]:
        """Current values of the open windows updated since the last call (emit-on-update)."""
        updated, self._updated = self._updated, set()
        results: list[WindowResult] = []
        for key, start, end in sorted(updated, key=lambda e: (e[2], e[0], e[1])):
            if self._sliding:
                state = self._sliding_state(key, end - 1) if self._is_open(end) else None
            else:
                state = self.store.entries.get((key, start, end))
            if state is not None:
                results.append(
                    WindowResult(key, start, end, self.aggregations.values(state), final=False)
                )
        return results

    @property
    def open_windows(self) -> int:
        """Windows not yet closed (for sliding windows: timestamps whose window is open)."""
        if self._sessions is not None:
            return self._sessions.open_sessions
        if self._sliding:
            return sum(len(keys) for keys in self._to_close.values())
        return sum(len(windows) for windows in self._by_end.values())

    # ------------------------------------------------------------------ tumbling, hopping

    def _add_fixed(self, event: SystemEvent, ts: int, wm: int | None) -> bool:
        key = self.key_of(event)
        entries = self.store.entries
        limit = None if wm is None else wm - self._grace
        accepted = False
        assert self._fixed is not None
        for start, end in self._fixed.windows_for(ts):
            if limit is not None and end <= limit:
                continue  # closed already
            entry = (key, start, end)
            state = entries.get(entry)
            if state is None:
                state = entries[entry] = self.aggregations.new()
                windows = self._by_end[end]
                if not windows:
                    heapq.heappush(self._ends, end)
                windows.add((key, start))
            self.aggregations.add(state, event)
            self.store.dirty.add(entry)
            if self.emit_on_update:
                self._updated.add(entry)
            if self.trigger is not None:
                self.trigger.check(key, start, end, state.count, event)
            accepted = True
        return accepted

    # ------------------------------------------------------------------ session

    def _add_session(self, event: SystemEvent, ts: int, wm: int | None) -> bool:
        if wm is not None and wm >= ts + 1 + self._grace:
            return False
        assert self._sessions is not None
        entry = self._sessions.add(self.key_of(event), ts, event)
        if self.emit_on_update:
            self._updated.add(entry)
        return True

    # ------------------------------------------------------------------ sliding

    def _add_sliding(self, event: SystemEvent, ts: int, wm: int | None) -> bool:
        if wm is not None and wm >= ts + 1 + self._grace:
            return False
        size = self._size
        key = self.key_of(event)
        entry = (key, ts, ts + 1)
        entries = self.store.entries
        buckets = self._buckets.setdefault(key, [])
        state = entries.get(entry)
        if state is None:
            state = entries[entry] = self.aggregations.new()
            bisect.insort(buckets, ts)
            for pending, heap in (
                (self._to_close, self._close_heap),
                (self._to_purge, self._purge_heap),
            ):
                if not pending[ts]:
                    heapq.heappush(heap, ts)
                pending[ts].add(key)
        self.aggregations.add(state, event)
        self.store.dirty.add(entry)
        if self.emit_on_update:
            lo = bisect.bisect_left(buckets, ts)
            hi = bisect.bisect_right(buckets, ts + size - 1)
            for u in buckets[lo:hi]:
                self._updated.add((key, u - size + 1, u + 1))
        if self.trigger is not None:
            self._check_sliding(key, buckets, ts, event)
        return True

    def _check_sliding(self, key: str, buckets: list[int], ts: int, event: SystemEvent) -> None:
        """Show the trigger every window containing ``ts``, oldest first (one sweep)."""
        assert self.trigger is not None
        size, entries = self._size, self.store.entries
        lo = bisect.bisect_left(buckets, ts - size + 1)
        i = bisect.bisect_left(buckets, ts)
        hi = bisect.bisect_right(buckets, ts + size - 1)
        count = sum(entries[(key, b, b + 1)].count for b in buckets[lo : i + 1])
        for j in range(i, hi):
            u = buckets[j]
            if j > i:
                count += entries[(key, u, u + 1)].count
                while buckets[lo] <= u - size:
                    count -= entries[(key, buckets[lo], buckets[lo] + 1)].count
                    lo += 1
            self.trigger.check(key, u - size + 1, u + 1, count, event)

    def _sliding_state(self, key: str, until: int) -> WindowState:
        buckets = self._buckets[key]
        lo = bisect.bisect_left(buckets, until - self._size + 1)
        hi = bisect.bisect_right(buckets, until)
        merged = self.aggregations.new()
        entries = self.store.entries
        for b in buckets[lo:hi]:
            self.aggregations.merge(merged, entries[(key, b, b + 1)])
        return merged

    def _is_open(self, end: int) -> bool:
        wm = self.store.watermark
        return wm is None or wm < end + self._grace

    # ------------------------------------------------------------------ closing

    def _close(self, wm: int) -> None:
        if self.trigger is not None:
            self.trigger.purge(wm)
        if self._sessions is not None:
            self._close_sessions(wm)
        elif self._sliding:
            self._close_sliding(wm - self._grace)
        else:
            self._close_fixed(wm - self._grace)

    def _close_fixed(self, limit: int) -> None:
        ends, by_end, entries = self._ends, self._by_end, self.store.entries
        while ends and ends[0] <= limit:
            end = heapq.heappop(ends)
            for key, start in sorted(by_end.pop(end, ())):
                state = entries.pop((key, start, end))
                self.store.dirty.add((key, start, end))
                self.closed.append(
                    WindowResult(key, start, end, self.aggregations.values(state), final=True)
                )

    def _close_sessions(self, wm: int) -> None:
        assert self._sessions is not None
        for (key, start, end), state in self._sessions.close(wm):
            self.closed.append(
                WindowResult(key, start, end, self.aggregations.values(state), final=True)
            )

    def _close_sliding(self, limit: int) -> None:
        size = self._size
        while self._close_heap and self._close_heap[0] + 1 <= limit:
            ts = heapq.heappop(self._close_heap)
            for key in sorted(self._to_close.pop(ts, ())):
                state = self._sliding_state(key, ts)
                self.closed.append(
                    WindowResult(
                        key, ts - size + 1, ts + 1, self.aggregations.values(state), final=True
                    )
                )
        # One ms later than strictly needed, so the trigger can still count the
        # window ending just before an accepted event (see _add_sliding).
        while self._purge_heap and self._purge_heap[0] + size < limit:
            ts = heapq.heappop(self._purge_heap)
            for key in self._to_purge.pop(ts, ()):
                del self.store.entries[(key, ts, ts + 1)]
                self.store.dirty.add((key, ts, ts + 1))
                buckets = self._buckets[key]
                del buckets[bisect.bisect_left(buckets, ts)]
                if not buckets:
                    del self._buckets[key]

    def _rebuild_indexes(self) -> None:
        """Index a restored store: which windows close when, which buckets purge when."""
        if self._sessions is not None:
            return  # the session index indexed the store itself
        for key, start, end in self.store.entries:
            if not self._sliding:
                if not self._by_end[end]:
                    heapq.heappush(self._ends, end)
                self._by_end[end].add((key, start))
                continue
            bisect.insort(self._buckets.setdefault(key, []), start)
            pending = [(self._to_purge, self._purge_heap)]
            if self._is_open(end):
                pending.append((self._to_close, self._close_heap))
            for keys_at, heap in pending:
                if not keys_at[start]:
                    heapq.heappush(heap, start)
                keys_at[start].add(key)
