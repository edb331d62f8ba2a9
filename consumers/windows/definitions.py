"""What a user configures: a window kind, its size (and step), and a grace period.

Definitions are small validated values; the machinery that runs them
(:mod:`consumers.windows.engine`) is built from them, as Quix Streams separates
``definitions.py`` from its runtime windows.

Every window is a half-open interval ``[start, end)`` of event time in milliseconds
since the epoch, and closes once the partition's watermark (the largest event
timestamp it has seen) reaches ``end + grace``:

* **tumbling** ``size``: ``[k*size, (k+1)*size)``, each event in exactly one window;
* **hopping** ``size/step``: ``[k*step, k*step + size)``, each event in ``size/step``
  windows (rounded up) when ``step`` < ``size``;
* **sliding** ``size``: one window per distinct event timestamp ``t`` of a key,
  ``[t - size + 1, t + 1)``: "the events of the last ``size`` ms as of ``t``".
* **session** ``gap``: the events of a key no more than ``gap`` apart, chained: a
  session ``[first, last + 1)`` grows with each event within ``gap`` of it, and two
  sessions merge when an event bridges them. Sessions close on ``last + 1 + gap +
  grace``; an event is late once the watermark reaches ``t + 1 + grace``, which
  guarantees no accepted event could still have joined a closed session.

Text forms, as the CLI takes them: ``tumbling:60s``, ``hopping:60s/10s``,
``sliding:60s``, ``session:30m``; durations are an integer with ``ms``, ``s``, ``m``,
``h`` or ``d``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar, Final, Literal, TypeAlias

from agent_events.agent_runtime.errors import ConfigError

__all__ = [
    "HoppingWindow",
    "SessionWindow",
    "SlidingWindow",
    "TumblingWindow",
    "WindowDefinition",
    "WindowKind",
    "format_duration",
    "parse_duration",
    "parse_window",
]

WindowKind = Literal["tumbling", "hopping", "sliding", "session"]

_UNITS_MS: Final = {"ms": 1, "s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_DURATION: Final = re.compile(r"^\s*(\d+)\s*(ms|s|m|h|d)\s*$")


def parse_duration(text: str | int) -> int:
    """``"60s"`` -> ``60000``: a duration in milliseconds. A bare int is milliseconds."""
    if isinstance(text, int) and not isinstance(text, bool):
        if text < 0:
            raise ConfigError(f"duration {text} ms is negative")
        return text
    match = _DURATION.match(str(text))
    if match is None:
        raise ConfigError(
            f"duration {text!r} is not an integer with a unit; write e.g. 500ms, 10s, 5m, 1h"
        )
    return int(match.group(1)) * _UNITS_MS[match.group(2)]


def format_duration(ms: int) -> str:
    """``60000`` -> ``"60s"``: the shortest exact text form of a duration."""
    for unit in ("d", "h", "m", "s"):
        if ms and ms % _UNITS_MS[unit] == 0:
            return f"{ms // _UNITS_MS[unit]}{unit}"
    return f"{ms}ms"


def _positive(name: str, value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ConfigError(f"{name} must be a positive number of milliseconds, got {value!r}")


def _not_negative(name: str, value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ConfigError(f"{name} must be zero or more milliseconds, got {value!r}")


@dataclass(frozen=True, slots=True)
class TumblingWindow:
    """Fixed, non-overlapping windows of ``size_ms``, aligned to the epoch."""

    size_ms: int
    grace_ms: int = 0

    kind: ClassVar[WindowKind] = "tumbling"

    def __post_init__(self) -> None:
        _positive("window size", self.size_ms)
        _not_negative("grace", self.grace_ms)

    @property
    def step_ms(self) -> int:
        """Distance between window starts (the size, for tumbling windows)."""
        return self.size_ms

    def windows_for(self, timestamp_ms: int) -> list[tuple[int, int]]:
        """The one ``(start, end)`` window containing ``timestamp_ms``."""
        start = timestamp_ms - timestamp_ms % self.size_ms
        return [(start, start + self.size_ms)]

    def is_late(self, timestamp_ms: int, watermark_ms: int) -> bool:
        """Whether every window of an event at ``timestamp_ms`` is closed at ``watermark_ms``."""
        return (
            timestamp_ms - timestamp_ms % self.size_ms + self.size_ms + self.grace_ms
            <= watermark_ms
        )

    def __str__(self) -> str:
        return f"tumbling:{format_duration(self.size_ms)}"


@dataclass(frozen=True, slots=True)
class HoppingWindow:
    """Overlapping windows of ``size_ms`` starting every ``step_ms`` (aligned to the epoch)."""

    size_ms: int
    step_ms: int
    grace_ms: int = 0

    kind: ClassVar[WindowKind] = "hopping"

    def __post_init__(self) -> None:
        _positive("window size", self.size_ms)
        _positive("hop step", self.step_ms)
        _not_negative("grace", self.grace_ms)
        if self.step_ms > self.size_ms:
            raise ConfigError(
                f"hop step {format_duration(self.step_ms)} is longer than the window "
                f"{format_duration(self.size_ms)}; events between windows would be lost"
            )

    def windows_for(self, timestamp_ms: int) -> list[tuple[int, int]]:
        """Every ``(start, end)`` window containing ``timestamp_ms``, oldest first."""
        step, size = self.step_ms, self.size_ms
        start = timestamp_ms - timestamp_ms % step
        found: list[tuple[int, int]] = []
        while start > timestamp_ms - size:
            found.append((start, start + size))
            start -= step
        found.reverse()
        return found

    def is_late(self, timestamp_ms: int, watermark_ms: int) -> bool:
        """Whether every window of an event at ``timestamp_ms`` is closed at ``watermark_ms``."""
        newest_end = timestamp_ms - timestamp_ms % self.step_ms + self.size_ms
        return newest_end + self.grace_ms <= watermark_ms

    def __str__(self) -> str:
        return f"hopping:{format_duration(self.size_ms)}/{format_duration(self.step_ms)}"


@dataclass(frozen=True, slots=True)
class SlidingWindow:
    """One window per distinct event timestamp ``t`` of a key: ``[t - size + 1, t + 1)``."""

    size_ms: int
    grace_ms: int = 0

    kind: ClassVar[WindowKind] = "sliding"

    def __post_init__(self) -> None:
        _positive("window size", self.size_ms)
        _not_negative("grace", self.grace_ms)

    def window_ending_at(self, timestamp_ms: int) -> tuple[int, int]:
        """The ``(start, end)`` window of an event at ``timestamp_ms``."""
        return (timestamp_ms - self.size_ms + 1, timestamp_ms + 1)

    def is_late(self, timestamp_ms: int, watermark_ms: int) -> bool:
        """Whether the window of an event at ``timestamp_ms`` is closed at ``watermark_ms``."""
        return timestamp_ms + 1 + self.grace_ms <= watermark_ms

    def __str__(self) -> str:
        return f"sliding:{format_duration(self.size_ms)}"


@dataclass(frozen=True, slots=True)
class SessionWindow:
    """Activity sessions of a key: events at most ``gap_ms`` apart share one window."""

    gap_ms: int
    grace_ms: int = 0

    kind: ClassVar[WindowKind] = "session"

    def __post_init__(self) -> None:
        _positive("session gap", self.gap_ms)
        _not_negative("grace", self.grace_ms)

    def is_late(self, timestamp_ms: int, watermark_ms: int) -> bool:
        """Whether an event at ``timestamp_ms`` is too late at ``watermark_ms`` (by grace)."""
        return timestamp_ms + 1 + self.grace_ms <= watermark_ms

    def closes_at(self, end_ms: int) -> int:
        """The watermark that closes a session ending (exclusively) at ``end_ms``."""
        return end_ms + self.gap_ms + self.grace_ms

    def __str__(self) -> str:
        return f"session:{format_duration(self.gap_ms)}"


WindowDefinition: TypeAlias = TumblingWindow | HoppingWindow | SlidingWindow | SessionWindow
"""Any window definition; ``definition.kind`` tells which."""


def parse_window(spec: str, *, grace: str | int = 0) -> WindowDefinition:
    """``"tumbling:60s"``, ``"hopping:60s/10s"``, ``"sliding:60s"`` or ``"session:30m"``.

    ``grace`` (``"10s"`` or milliseconds) is how long after a window's end late
    events are still added to it. Raises :class:`ConfigError` naming the mistake.
    """
    kind, sep, rest = spec.strip().partition(":")
    kind = kind.strip().lower()
    if not sep or not rest.strip():
        raise ConfigError(
            f"window {spec!r} has no size; write tumbling:60s, hopping:60s/10s, sliding:60s "
            "or session:30m"
        )
    grace_ms = parse_duration(grace)
    if kind == "hopping":
        size, slash, step = rest.partition("/")
        if not slash:
            raise ConfigError(f"hopping window {spec!r} needs a step: hopping:SIZE/STEP")
        return HoppingWindow(parse_duration(size), parse_duration(step), grace_ms)
    if "/" in rest:
        raise ConfigError(f"only hopping windows take a step; {spec!r} has one")
    size_ms = parse_duration(rest)
    if kind == "tumbling":
        return TumblingWindow(size_ms, grace_ms)
    if kind == "sliding":
        return SlidingWindow(size_ms, grace_ms)
    if kind == "session":
        return SessionWindow(size_ms, grace_ms)
    raise ConfigError(f"unknown window kind {kind!r}; use tumbling, hopping, sliding or session")
