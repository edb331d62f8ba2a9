"""Record headers every agent-events record carries, and the per-session sequence.

Headers let any reader route and check a record without decoding it:
``event_type`` (the type label), ``agent_events.agent_id`` (so a window service re-keys
by type and agent without decoding), ``content-type``, ``agent_events.producer_id`` and
``agent_events.sequence`` (1, 2, 3 ... per session key and producer, so a reader sees
gaps, duplicates and reorders), and W3C ``traceparent`` when a trace is active.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from agent_events.agent_runtime.lru import LRUMap

__all__ = [
    "AGENT_ID_HEADER",
    "CONTENT_TYPE_HEADER",
    "EVENT_TYPE_HEADER",
    "PRODUCER_ID_HEADER",
    "SEQUENCE_HEADER",
    "TRACEPARENT_HEADER",
    "Headers",
    "SessionSequencer",
    "header_value",
    "new_producer_id",
]

EVENT_TYPE_HEADER = "event_type"
AGENT_ID_HEADER = "agent_events.agent_id"
CONTENT_TYPE_HEADER = "content-type"
PRODUCER_ID_HEADER = "agent_events.producer_id"
SEQUENCE_HEADER = "agent_events.sequence"
TRACEPARENT_HEADER = "traceparent"

Headers = list[tuple[str, bytes]]


def new_producer_id() -> str:
    """A fresh id for one producer instance; sequences are per (producer, session)."""
    return uuid.uuid4().hex


def header_value(headers: Iterable[tuple[str, bytes]] | None, name: str) -> bytes | None:
    """The value of the last header called ``name``, or ``None``."""
    found: bytes | None = None
    for key, value in headers or ():
        if key == name:
            found = value
    return found


class SessionSequencer:
    """Hands out 1, 2, 3 ... per session key, remembering at most ``capacity`` keys.

    A session forgotten (least recently used) restarts at 1 under the same
    producer id, which a reader sees as a restart, not as a gap.
    """

    def __init__(self, capacity: int = 100_000) -> None:
        self._next: LRUMap[str, int] = LRUMap(capacity)

    @property
    def forgotten(self) -> int:
        """Sessions forgotten so far to stay within ``capacity`` (each restarts at 1)."""
        return self._next.evicted

    def next(self, key: str) -> int:
        value = self._next.get(key) or 1
        self._next.put(key, value + 1)
        return value
