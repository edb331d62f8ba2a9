"""The one threshold-alert rule, shared by the in-process aggregator and the window trigger.

Rule: a window ``[start_ms, end_ms)`` of a key holding at least ``threshold`` events
fires an alert, unless it overlaps the window of the key's previous alert
(``start_ms < previous_end_ms``). So a burst alerts once; a steady rate above the
threshold alerts once per window length (not at every event, and not never); and a
key that went quiet alerts again on its next burst.

:class:`~consumers.handlers.aggregator.EventAggregator` (in process) and
:class:`~consumers.windows.trigger.ThresholdTrigger` (on Kafka) both ask
:func:`should_alert`, so the same events give the same alerts in both.
"""

from __future__ import annotations

__all__ = ["should_alert"]


def should_alert(count: int, threshold: int, start_ms: int, previous_end_ms: int | None) -> bool:
    """Whether a window starting at ``start_ms`` with ``count`` events fires (see the rule)."""
    if count < threshold:
        return False
    return previous_end_ms is None or start_ms >= previous_end_ms
