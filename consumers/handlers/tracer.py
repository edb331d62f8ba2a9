"""A bounded trace of recent events, indexed by session (the seed's ``EventTracer``).

Fixes of the seed: its trace records had no ``session_id``, so
``get_events_for_session`` always returned ``[]``; its log grew without bound.
"""

from __future__ import annotations

from collections import deque
from typing import TypedDict

from pydantic import JsonValue

from agent_events.agent_runtime.event_bus import type_label
from agent_events.agent_runtime.events import EventType, SystemEvent
from agent_events.agent_runtime.lru import LRUMap, require_positive_int

__all__ = ["EventTracer", "TraceError", "TraceRecord"]


class TraceError(TypedDict):
    message: str | None
    type: str | None


class TraceRecord(TypedDict, total=False):
    """One traced event: the seed's keys plus ``event_id`` and ``session_id``."""

    event_id: str
    type: str
    agent: str
    user: str | None
    session_id: str | None
    timestamp: str
    metadata: dict[str, JsonValue]
    execution_time_ms: int | None
    error: TraceError


class EventTracer:
    """Keeps the newest ``max_events`` trace records and, per session, its newest events.

    At most ``max_sessions`` sessions are indexed (least recently active forgotten
    first), each with at most ``max_events_per_session`` records. Records are built
    once and shared between the two views.
    """

    def __init__(
        self,
        max_events: int = 10_000,
        max_sessions: int = 1_000,
        max_events_per_session: int = 1_000,
    ) -> None:
        self.event_log: deque[TraceRecord] = deque(
            maxlen=require_positive_int("max_events", max_events)
        )
        self.max_events_per_session = require_positive_int(
            "max_events_per_session", max_events_per_session
        )
        self._sessions: LRUMap[str, deque[TraceRecord]] = LRUMap(
            require_positive_int("max_sessions", max_sessions)
        )
        self.traced = 0

    async def trace(self, event: SystemEvent) -> None:
        """Record one event."""
        record = TraceRecord(
            event_id=str(event.event_id),
            type=type_label(event.event_type),
            agent=event.agent_id,
            user=event.user_id,
            session_id=event.session_id,
            timestamp=event.timestamp.isoformat(),
            metadata=dict(event.metadata),
            execution_time_ms=event.execution_time_ms,
        )
        if event.event_type is EventType.ERROR_OCCURRED:
            record["error"] = TraceError(message=event.error_message, type=event.error_type)
        self.event_log.append(record)
        if event.session_id is not None:
            self._sessions.get_or_create(
                event.session_id, lambda: deque(maxlen=self.max_events_per_session)
            ).append(record)
        self.traced += 1

    __call__ = trace

    def get_trace_log(self) -> list[TraceRecord]:
        """The newest traced records, oldest first (a copy)."""
        return list(self.event_log)

    def get_events_for_session(self, session_id: str) -> list[TraceRecord]:
        """The newest traced records of one session, oldest first (a copy)."""
        records = self._sessions.get(session_id)
        return list(records) if records is not None else []

    @property
    def session_count(self) -> int:
        return len(self._sessions)
