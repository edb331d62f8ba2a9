"""Counters and latency figures the :class:`~agent_runtime.event_bus.EventBus` keeps.

They exist only when the bus is built with ``enable_metrics=True``; a bus without
metrics holds no instance and does no per-event bookkeeping for them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

__all__ = ["BusMetrics", "HandlerTally", "LatencyStats", "MetricsSnapshot"]


@dataclass(slots=True)
class LatencyStats:
    """Running latency figures of one handler, in seconds."""

    count: int = 0
    total: float = 0.0
    min: float = float("inf")
    max: float = 0.0

    def observe(self, seconds: float) -> None:
        self.count += 1
        self.total += seconds
        if seconds < self.min:
            self.min = seconds
        if seconds > self.max:
            self.max = seconds

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else 0.0


@dataclass(frozen=True, slots=True)
class MetricsSnapshot:
    """A copy of the bus's metrics at one moment, safe to keep and compare."""

    published: dict[str, int]
    handled: dict[tuple[str, str], int]
    failed: dict[tuple[str, str], int]
    latency: dict[str, LatencyStats]
    queue_depth: int
    queue_depth_by_handler: dict[str, int]

    @property
    def published_total(self) -> int:
        return sum(self.published.values())

    @property
    def handled_total(self) -> int:
        return sum(self.handled.values())

    @property
    def failed_total(self) -> int:
        return sum(self.failed.values())


@dataclass(slots=True)
class HandlerTally:
    """Outcome counts of one handler on one event type.

    A worker holds on to its tally and bumps an int, so recording costs no
    tuple key, hash or dict lookup per event.
    """

    handled: int = 0
    failed: int = 0


@dataclass(slots=True)
class BusMetrics:
    """Mutable counters, keyed by event type label and handler name."""

    published: Counter[str] = field(default_factory=Counter)
    tallies: dict[tuple[str, str], HandlerTally] = field(default_factory=dict)
    latency: dict[str, LatencyStats] = field(default_factory=dict)

    def tally(self, type_label: str, handler: str) -> HandlerTally:
        """The counts of ``handler`` on ``type_label`` events, created on first use."""
        tally = self.tallies.get((type_label, handler))
        if tally is None:
            tally = self.tallies[type_label, handler] = HandlerTally()
        return tally

    def latency_of(self, handler: str) -> LatencyStats:
        """The running latency of ``handler``, created on first use."""
        stats = self.latency.get(handler)
        if stats is None:
            stats = self.latency[handler] = LatencyStats()
        return stats

    def snapshot(self, depth_by_handler: dict[str, int]) -> MetricsSnapshot:
        tallies = self.tallies.items()
        return MetricsSnapshot(
            published=dict(self.published),
            handled={key: t.handled for key, t in tallies if t.handled},
            failed={key: t.failed for key, t in tallies if t.failed},
            latency={
                name: LatencyStats(s.count, s.total, s.min, s.max)
                for name, s in self.latency.items()
            },
            queue_depth=max(depth_by_handler.values(), default=0),
            queue_depth_by_handler=depth_by_handler,
        )
