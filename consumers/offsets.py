"""Which offset of a partition may be committed, when records finish out of order.

Records are taken in offset order but may finish out of order (per-key ordering
runs several sessions of one partition at once). Kafka commits one offset per
partition meaning "everything below is done", so the committable offset is one
past the longest prefix of taken records that are all done, as Confluent's
parallel consumer does.
"""

from __future__ import annotations

from collections import deque

__all__ = ["OffsetTracker"]


class OffsetTracker:
    """Tracks taken and finished offsets of one partition."""

    __slots__ = ("_done", "_last_committed", "_next_commit", "_taken")

    def __init__(self) -> None:
        self._taken: deque[int] = deque()
        self._done: set[int] = set()
        self._next_commit: int | None = None
        self._last_committed: int | None = None

    def take(self, offset: int) -> None:
        """Record that ``offset`` was handed to a handler (offsets only increase)."""
        self._taken.append(offset)

    def finish(self, offset: int) -> None:
        """Record that ``offset`` is done (handled, or dead-lettered)."""
        self._done.add(offset)
        taken, done = self._taken, self._done
        while taken and taken[0] in done:
            first = taken.popleft()
            done.discard(first)
            self._next_commit = first + 1

    @property
    def in_flight(self) -> int:
        """Taken records that are not yet part of the committable prefix."""
        return len(self._taken)

    def first_pending(self) -> int | None:
        """The lowest taken offset not done (fetch again from here), or ``None``."""
        return self._taken[0] if self._taken else None

    def committable(self) -> int | None:
        """The offset to commit now, or ``None`` when nothing new is committable."""
        if self._next_commit is None or self._next_commit == self._last_committed:
            return None
        return self._next_commit

    def committed(self, offset: int) -> None:
        """Record that ``offset`` was committed to the group."""
        self._last_committed = offset
