"""Watermarks across a repartition: what re-keying tasks report and how it is combined.

An input partition's watermark travels two ways to the repartition topic: on every
forwarded event (``WATERMARK_HEADER``, so the aggregating task judges the event by its
own partition's order) and as a control record to every repartition partition when it
changed (so partitions that got no event still learn it). The aggregating task's
watermark is :func:`effective_watermark` of what it heard.
"""

from __future__ import annotations

from collections.abc import Sequence

from agent_events.consumers.windows.state import SourceMark
from agent_events.producers.headers import header_value

__all__ = [
    "CONTROL_HEADER",
    "WATERMARK_CONTROL",
    "WATERMARK_HEADER",
    "effective_watermark",
    "is_control",
]

CONTROL_HEADER = "__agent_events.control"
"""Marks a control record on the repartition topic (not an event)."""

WATERMARK_CONTROL = b"watermark"

WATERMARK_HEADER = "__agent_events.watermark"
"""On a re-keyed event: ``<watermark ms> <topic>:<partition>``, its input partition's
watermark when it was forwarded (topic names cannot contain spaces)."""
"""``CONTROL_HEADER`` value of a watermark report: ``{"source", "watermark", "idle"}`` JSON."""


def is_control(headers: Sequence[tuple[str, bytes]] | None) -> bool:
    """Whether a record on the repartition topic is a watermark report, not an event."""
    return bool(headers) and header_value(headers, CONTROL_HEADER) == WATERMARK_CONTROL


def effective_watermark(sources: dict[str, SourceMark], expected: frozenset[str]) -> int | None:
    """The watermark after a repartition: the smallest of the active upstream partitions.

    ``None`` (do not advance) while an expected upstream partition has not reported
    or is active without a watermark. Idle partitions (caught up) do not hold it
    back; when every partition is idle, everything sent has arrived, so it is the
    largest reported watermark.
    """
    marks = [sources.get(name) for name in expected]
    if any(m is None for m in marks):
        return None
    active = [m.watermark for m in marks if m is not None and not m.idle]
    if active:
        return None if any(w is None for w in active) else min(w for w in active if w is not None)
    known = [m.watermark for m in marks if m is not None and m.watermark is not None]
    return max(known) if known else None
