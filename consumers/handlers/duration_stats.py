"""Running duration statistics in constant memory.

Count, mean, min and max are exact over every observation; p50 and p95 come from a
uniform reservoir sample (Vitter's algorithm R) of at most ``reservoir_size`` values,
so they are exact until that many observations and an unbiased estimate after.
"""

from __future__ import annotations

import math
import random
from typing import TypedDict

from agent_events.agent_runtime.lru import require_positive_int

__all__ = ["DEFAULT_RESERVOIR_SIZE", "DurationStats", "DurationSummary"]

DEFAULT_RESERVOIR_SIZE = 1024


class DurationSummary(TypedDict):
    """The seed's ``{"avg", "min", "max", "count"}`` plus two percentiles."""

    count: int
    avg: float
    min: float
    max: float
    p50: float
    p95: float


class DurationStats:
    """Statistics of one stream of durations; memory is bounded by the reservoir."""

    __slots__ = ("_random", "_sample", "count", "max", "min", "reservoir_size", "total")

    def __init__(
        self, reservoir_size: int = DEFAULT_RESERVOIR_SIZE, seed: int | None = None
    ) -> None:
        self.reservoir_size = require_positive_int("reservoir_size", reservoir_size)
        self.count = 0
        self.total = 0.0
        self.min = math.inf
        self.max = -math.inf
        self._sample: list[float] = []
        self._random = random.Random(seed)

    def observe(self, value: float) -> None:
        """Add one duration."""
        self.count += 1
        self.total += value
        if value < self.min:
            self.min = value
        if value > self.max:
            self.max = value
        if len(self._sample) < self.reservoir_size:
            self._sample.append(value)
        else:
            slot = self._random.randrange(self.count)
            if slot < self.reservoir_size:
                self._sample[slot] = value

    @property
    def avg(self) -> float:
        return self.total / self.count if self.count else 0.0

    @property
    def sample_size(self) -> int:
        return len(self._sample)

    def percentile(self, p: float) -> float:
        """The nearest-rank ``p``-th percentile (0 < p <= 100) of the sample; 0.0 when empty."""
        return _nearest_rank(sorted(self._sample), p) if self._sample else 0.0

    def summary(self) -> DurationSummary:
        """A copy of the figures, in the seed's shape plus ``p50`` and ``p95``."""
        if not self.count:
            return DurationSummary(count=0, avg=0.0, min=0.0, max=0.0, p50=0.0, p95=0.0)
        ordered = sorted(self._sample)
        return DurationSummary(
            count=self.count,
            avg=self.avg,
            min=self.min,
            max=self.max,
            p50=_nearest_rank(ordered, 50),
            p95=_nearest_rank(ordered, 95),
        )


def _nearest_rank(ordered: list[float], p: float) -> float:
    rank = min(len(ordered), max(1, math.ceil(p / 100 * len(ordered))))
    return ordered[rank - 1]
