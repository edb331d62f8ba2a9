"""Threshold alerts: "N events of a key within a window", fired once per burst.

Rule (:func:`consumers.threshold.should_alert`, the same the in-process
:class:`~consumers.handlers.aggregator.EventAggregator` applies): an alert fires when
a window of a key holds at least ``threshold`` events, unless that window overlaps
the window of the key's previous alert. So a tumbling window alerts at most once;
overlapping hopping and sliding windows alert once per burst (a steady high rate
alerts once per window length, not at every event); and a late event that takes an
already counted window over the threshold still alerts.

The end of the key's last alert window is window state like any other: it is kept in
the :class:`WindowStore`, written to the changelog and restored, so a restart neither
repeats nor forgets an alert. It is purged once no window overlapping it can change.
"""

from __future__ import annotations

import heapq
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from agent_events.agent_runtime.events import EventType, SystemEvent
from agent_events.agent_runtime.subscription import type_label
from agent_events.consumers.handlers.aggregator import ALERT_KIND
from agent_events.consumers.threshold import should_alert
from agent_events.consumers.windows.state import WindowStore

__all__ = ["ThresholdAlert", "ThresholdTrigger"]

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_ALERT_NAMESPACE: Final = uuid.UUID("5b0a3c1e-58f4-4c44-9a4e-2f6f0f0d7a11")


def _at_ms(ms: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=ms)


@dataclass(frozen=True, slots=True)
class ThresholdAlert:
    """A window's count reached the threshold; ``event`` is the event that took it there."""

    key: str
    start_ms: int
    end_ms: int
    count: int
    threshold: int
    event: SystemEvent

    def to_event(self, source: str) -> SystemEvent:
        """The alert as a ``CUSTOM`` event, shaped like :class:`EventAggregator`'s alerts.

        Its ``event_id`` is derived from ``source`` (the consumer group), the key and
        the window, so an alert delivered twice (at least once, after a crash) is
        recognisably the same alert: dedupe it with an idempotent handler.
        """
        ident = f"{source}|{self.key}|{self.start_ms}|{self.end_ms}"
        return SystemEvent(
            event_id=uuid.uuid5(_ALERT_NAMESPACE, ident),
            event_type=EventType.CUSTOM,
            agent_id=self.event.agent_id,
            user_id=self.event.user_id,
            session_id=self.event.session_id,
            timestamp=self.event.timestamp,
            metadata={
                "kind": ALERT_KIND,
                "key": self.key,
                "source_event_type": type_label(self.event.event_type),
                "count": self.count,
                "threshold": self.threshold,
                "window_start": _at_ms(self.start_ms).isoformat(),
                "window_end": _at_ms(self.end_ms).isoformat(),
            },
        )


class ThresholdTrigger:
    """Applies the module's rule to window counts; alerts collect in :attr:`alerts`.

    ``span_ms`` is the longest window (its size) and ``grace_ms`` the grace: together
    they say when no window overlapping an alert can change any more.
    """

    def __init__(self, threshold: int, span_ms: int, grace_ms: int, store: WindowStore) -> None:
        self.threshold = threshold
        self.alerts: list[ThresholdAlert] = []
        self._horizon = span_ms + grace_ms
        self._store = store
        self._purge: list[tuple[int, str]] = [
            (end + self._horizon, key) for key, end in store.alerted.items()
        ]
        heapq.heapify(self._purge)

    def check(self, key: str, start: int, end: int, count: int, event: SystemEvent) -> None:
        """Fire for window ``[start, end)`` of ``key`` holding ``count`` events, if the rule says so."""
        if not should_alert(count, self.threshold, start, self._store.alerted.get(key)):
            return
        self.alerts.append(ThresholdAlert(key, start, end, count, self.threshold, event))
        self._store.alerted[key] = end
        self._store.dirty_alerts.add(key)
        heapq.heappush(self._purge, (end + self._horizon, key))

    def purge(self, watermark: int) -> None:
        """Forget alert windows no open or future window overlaps any more."""
        heap, alerted = self._purge, self._store.alerted
        while heap and heap[0][0] <= watermark:
            due, key = heapq.heappop(heap)
            if alerted.get(key) == due - self._horizon:
                del alerted[key]
                self._store.dirty_alerts.add(key)
