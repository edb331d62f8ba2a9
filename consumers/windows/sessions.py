"""Session windows of one partition: grow, merge and close sessions in a window store.

A session of a key is stored as the entry ``(key, first, last + 1)`` of a
:class:`~consumers.windows.state.WindowStore`, like any window, so the changelog,
restore and output need nothing new. Growing or merging a session renames its entry:
the old entries become tombstones and the merged state is written under the new
bounds (the reducers' ``merge`` combines the states of bridged sessions).

Sessions of one key never come within ``gap`` of each other, so each key keeps a
sorted list of its open sessions, and an event finds the (at most two) sessions it
joins with one bisection. Closing uses a heap of ``(close at, key, start, end)``;
entries made stale by a merge are skipped when they surface.
"""

from __future__ import annotations

import bisect
import heapq

from agent_events.agent_runtime.events import SystemEvent
from agent_events.consumers.windows.aggregations import Aggregations, WindowState
from agent_events.consumers.windows.definitions import SessionWindow
from agent_events.consumers.windows.state import EntryKey, WindowStore

__all__ = ["SessionIndex"]


class SessionIndex:
    """The open sessions of one partition's store, by key and by closing watermark."""

    __slots__ = ("_aggregations", "_by_key", "_definition", "_heap", "_store")

    def __init__(
        self, definition: SessionWindow, aggregations: Aggregations, store: WindowStore
    ) -> None:
        self._definition = definition
        self._aggregations = aggregations
        self._store = store
        self._by_key: dict[str, list[tuple[int, int]]] = {}
        self._heap: list[tuple[int, str, int, int]] = []
        for key, start, end in store.entries:
            self._insert(key, start, end)

    @property
    def open_sessions(self) -> int:
        """Sessions not yet closed."""
        return sum(len(sessions) for sessions in self._by_key.values())

    def add(self, key: str, ts: int, event: SystemEvent) -> EntryKey:
        """Add an (accepted) event at ``ts``; returns the entry of the session it is now in."""
        gap = self._definition.gap_ms
        sessions = self._by_key.get(key)
        if sessions is None:
            sessions = self._by_key[key] = []
        hi = bisect.bisect_right(sessions, ts + gap, key=_start)
        lo = hi
        while lo > 0 and sessions[lo - 1][1] - 1 + gap >= ts:
            lo -= 1
        joined = sessions[lo:hi]
        entries, aggregations = self._store.entries, self._aggregations
        start = min([ts, *(s for s, _ in joined)])
        end = max([ts + 1, *(e for _, e in joined)])
        entry = (key, start, end)
        if len(joined) == 1 and joined[0] == (start, end):
            state = entries[entry]
        else:
            state = self._merged(key, joined)
            entries[entry] = state
            del sessions[lo:hi]
            self._insert(key, start, end)
        aggregations.add(state, event)
        self._store.dirty.add(entry)
        return entry

    def close(self, watermark: int) -> list[tuple[EntryKey, WindowState]]:
        """Remove and return the sessions ``watermark`` closes, by ``(end, key, start)``."""
        heap, entries, closed = self._heap, self._store.entries, []
        while heap and heap[0][0] <= watermark:
            _, key, start, end = heapq.heappop(heap)
            entry = (key, start, end)
            state = entries.pop(entry, None)
            if state is None:
                continue  # merged into a larger session since
            self._store.dirty.add(entry)
            sessions = self._by_key[key]
            sessions.remove((start, end))
            if not sessions:
                del self._by_key[key]
            closed.append((entry, state))
        return closed

    def _merged(self, key: str, joined: list[tuple[int, int]]) -> WindowState:
        """One state for the sessions ``joined`` (their entries become tombstones)."""
        entries, dirty = self._store.entries, self._store.dirty
        if len(joined) == 1:
            old = (key, *joined[0])
            dirty.add(old)
            return entries.pop(old)
        state = self._aggregations.new()
        for start, end in joined:
            old = (key, start, end)
            dirty.add(old)
            self._aggregations.merge(state, entries.pop(old))
        return state

    def _insert(self, key: str, start: int, end: int) -> None:
        """Index a session: in its key's sorted list, and in the closing heap."""
        bisect.insort(self._by_key.setdefault(key, []), (start, end))
        heapq.heappush(self._heap, (self._definition.closes_at(end), key, start, end))


def _start(session: tuple[int, int]) -> int:
    return session[0]
