"""Threshold alerts on a sliding event-time window (the seed's ``EventAggregator``).

This is the in-memory, single-process form; ``consumers.windows`` is the
Kafka-backed form with changelogs and grace periods.

Fixes of the seed: it subtracted aware event timestamps from a naive
``datetime.now()`` (``TypeError``) and measured the window on wall-clock time, so
replayed or delayed events were judged by when they were handled; it fired on every
event past the threshold (an alert storm: ten alerts for twenty events); it kept
every key forever and whole events in lists.

Semantics: stream time is the largest event timestamp seen. For a key
``(event_type, agent_id)`` the window holds its events with ``stream_time - window
< timestamp <= stream_time``. An event older than that is late and ignored
(counted in ``late_events``); a late-but-in-window event is counted where it
belongs. Alerts follow the one rule shared with the Kafka window trigger
(:func:`consumers.threshold.should_alert`): the window ``(stream_time - window,
stream_time]`` of a key holding ``threshold`` events fires unless it overlaps the
key's previous alert window. So a burst alerts once, a steady rate above the
threshold once per window length, and the seed's example gives the same alerts
here and in ``agent-events consume aggregate --window sliding:60s``. Keys whose
newest event left the window are purged (no later window can overlap their alert).
"""

from __future__ import annotations

import bisect
import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final, TypeAlias

from agent_events.agent_runtime.errors import ConfigError
from agent_events.agent_runtime.event_bus import EventBus, type_label
from agent_events.agent_runtime.events import EventType, EventTypeLike, SystemEvent
from agent_events.agent_runtime.lru import LRUMap, require_positive_int
from agent_events.consumers.threshold import should_alert

__all__ = ["ALERT_KIND", "AggregationAlert", "EventAggregator", "ThresholdCallback"]

logger = logging.getLogger(__name__)

ALERT_KIND: Final = "event_rate_threshold"
"""``metadata["kind"]`` of the alert events the aggregator publishes (and ignores)."""

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MS: Final = timedelta(milliseconds=1)


@dataclass(frozen=True, slots=True)
class AggregationAlert:
    """A key's count reached the threshold within the window."""

    event_type: EventTypeLike
    agent_id: str
    count: int
    threshold: int
    window_start: datetime
    window_end: datetime

    @property
    def key(self) -> str:
        """The seed's key: ``"<event_type>_<agent_id>"``."""
        return f"{type_label(self.event_type)}_{self.agent_id}"

    def to_event(self) -> SystemEvent:
        """The alert as a ``CUSTOM`` event, for publishing on a bus or topic."""
        return SystemEvent(
            event_type=EventType.CUSTOM,
            agent_id=self.agent_id,
            timestamp=self.window_end,
            metadata={
                "kind": ALERT_KIND,
                "source_event_type": type_label(self.event_type),
                "count": self.count,
                "threshold": self.threshold,
                "window_start": self.window_start.isoformat(),
                "window_end": self.window_end.isoformat(),
            },
        )


ThresholdCallback: TypeAlias = Callable[[AggregationAlert], Awaitable[object] | object]


class _KeyWindow:
    __slots__ = ("alert_end_ms", "times")

    def __init__(self) -> None:
        self.times: list[datetime] = []  # sorted event timestamps inside the window
        self.alert_end_ms: int | None = None  # end of the key's previous alert window


def _epoch_ms(moment: datetime) -> int:
    return (moment - _EPOCH) // _MS


class EventAggregator:
    """Counts events per ``(event_type, agent_id)`` in a sliding window; alerts once per burst.

    ``on_threshold`` (sync or async) receives an :class:`AggregationAlert`;
    ``alert_bus`` additionally gets it published as a ``CUSTOM`` event. Memory is
    bounded by ``max_keys`` keys of at most ``max_events_per_key`` timestamps (the
    oldest are forgotten first when a key exceeds it).
    """

    def __init__(
        self,
        window_seconds: float = 60,
        threshold: int = 10,
        on_threshold: ThresholdCallback | None = None,
        *,
        alert_bus: EventBus | None = None,
        max_keys: int = 10_000,
        max_events_per_key: int = 10_000,
    ) -> None:
        if not window_seconds > 0:
            raise ConfigError(f"window_seconds must be > 0, got {window_seconds!r}")
        self.window = timedelta(seconds=window_seconds)
        self.threshold = require_positive_int("threshold", threshold)
        self.max_events_per_key = require_positive_int("max_events_per_key", max_events_per_key)
        if self.max_events_per_key < self.threshold:
            raise ConfigError(
                f"max_events_per_key ({max_events_per_key}) must be >= threshold ({threshold})"
            )
        self.on_threshold = on_threshold
        self.alert_bus = alert_bus
        self._keys: LRUMap[tuple[EventTypeLike, str], _KeyWindow] = LRUMap(
            require_positive_int("max_keys", max_keys)
        )
        self.stream_time: datetime | None = None
        self.late_events = 0
        self.alerts_fired = 0
        self._since_purge = 0

    async def aggregate(self, event: SystemEvent) -> None:
        """Count ``event``; alert when :func:`consumers.threshold.should_alert` says so."""
        if event.event_type is EventType.CUSTOM and event.metadata.get("kind") == ALERT_KIND:
            return
        ts = event.timestamp
        if self.stream_time is None or ts > self.stream_time:
            self.stream_time = ts
        horizon = self.stream_time - self.window
        if ts <= horizon:
            self.late_events += 1
            return
        key = (event.event_type, event.agent_id)
        window = self._keys.get_or_create(key, _KeyWindow)
        bisect.insort(window.times, ts)
        self._expire(window, horizon)
        if len(window.times) > self.max_events_per_key:
            del window.times[: len(window.times) - self.max_events_per_key]
        count = len(window.times)
        self._maybe_purge(horizon)
        # The window as the Kafka engine spells it: [end - size, end) in epoch ms.
        end_ms = _epoch_ms(self.stream_time) + 1
        start_ms = end_ms - self.window // _MS
        if should_alert(count, self.threshold, start_ms, window.alert_end_ms):
            window.alert_end_ms = end_ms
            self.alerts_fired += 1
            await self._handle_aggregation(
                AggregationAlert(
                    event_type=event.event_type,
                    agent_id=event.agent_id,
                    count=count,
                    threshold=self.threshold,
                    window_start=horizon,
                    window_end=self.stream_time,
                )
            )

    __call__ = aggregate

    def count(self, event_type: EventTypeLike, agent_id: str) -> int:
        """Events of the key inside the window at the current stream time."""
        window = self._keys.get((event_type, agent_id))
        if window is None or self.stream_time is None:
            return 0
        self._expire(window, self.stream_time - self.window)
        return len(window.times)

    @property
    def key_count(self) -> int:
        """Keys held now (never more than ``max_keys``)."""
        return len(self._keys)

    async def _handle_aggregation(self, alert: AggregationAlert) -> None:
        """Deliver one alert; override to do something else (the seed's hook)."""
        logger.warning(
            "%d %s events for agent %s within %ss (threshold %d)",
            alert.count,
            type_label(alert.event_type),
            alert.agent_id,
            self.window.total_seconds(),
            alert.threshold,
        )
        if self.on_threshold is not None:
            result = self.on_threshold(alert)
            if inspect.isawaitable(result):
                await result
        if self.alert_bus is not None:
            await self.alert_bus.publish(alert.to_event())

    @staticmethod
    def _expire(window: _KeyWindow, horizon: datetime) -> None:
        cut = bisect.bisect_right(window.times, horizon)
        if cut:
            del window.times[:cut]

    def _maybe_purge(self, horizon: datetime) -> None:
        # Every max_keys // 4 + 1 events: amortised O(1) per event.
        self._since_purge += 1
        if self._since_purge > self._keys.maxsize // 4:
            self._since_purge = 0
            self._purge(horizon)

    def purge_idle_keys(self) -> int:
        """Drop keys with no event left in the window; returns how many were dropped."""
        if self.stream_time is None:
            return 0
        return self._purge(self.stream_time - self.window)

    def _purge(self, horizon: datetime) -> int:
        idle = [k for k, w in self._keys.items() if not w.times or w.times[-1] <= horizon]
        for key in idle:
            self._keys.pop(key)
        return len(idle)
