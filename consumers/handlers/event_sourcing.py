"""Persist every event, then update a projection from it (the seed's ``EventSourcingHandler``).

Steps of :meth:`EventSourcingHandler.handle`:

1. if an earlier projection update failed, rebuild the projection from the store;
2. append the event to the store (idempotent on ``event_id``);
3. only if it was new, apply it to the projection.

The store is the source of truth and the projection is derived from it, so a
redelivered event changes nothing, and a failed projection update is repaired
from the store on the next event (or by :meth:`~EventSourcingHandler.rebuild`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable
from uuid import UUID

from agent_events.agent_runtime.errors import ConfigError
from agent_events.agent_runtime.event_bus import type_label
from agent_events.agent_runtime.events import EventType, SystemEvent
from agent_events.agent_runtime.lru import LRUMap, require_positive_int
from agent_events.consumers.handlers.event_store import EventStore

__all__ = ["EventSourcingHandler", "Projector", "SessionProjection", "SessionState"]


@runtime_checkable
class Projector(Protocol):
    """State derived from events; must be rebuildable by ``reset`` + ``apply`` of every event."""

    async def apply(self, event: SystemEvent) -> None: ...

    def reset(self) -> None: ...


_STATUS_BY_TYPE = {
    EventType.SESSION_CREATED: "active",
    EventType.AGENT_STARTED: "running",
    EventType.AGENT_COMPLETED: "completed",
    EventType.ERROR_OCCURRED: "failed",
    EventType.SESSION_EXPIRED: "expired",
}


@dataclass(slots=True)
class SessionState:
    """What the events of one session say about it."""

    session_id: str
    agent_id: str
    user_id: str | None
    status: str
    event_count: int
    first_seen: datetime
    last_seen: datetime
    last_event_type: str
    checkpoints: int = 0
    last_error: str | None = None


class SessionProjection:
    """Per-session state, for at most ``max_sessions`` sessions (least recently updated dropped)."""

    def __init__(self, max_sessions: int = 10_000) -> None:
        self.sessions: LRUMap[str, SessionState] = LRUMap(
            require_positive_int("max_sessions", max_sessions)
        )

    async def apply(self, event: SystemEvent) -> None:
        session_id = event.session_id
        if session_id is None:
            return
        label = type_label(event.event_type)
        state = self.sessions.get_or_create(
            session_id,
            lambda: SessionState(
                session_id=session_id,
                agent_id=event.agent_id,
                user_id=event.user_id,
                status="active",
                event_count=0,
                first_seen=event.timestamp,
                last_seen=event.timestamp,
                last_event_type=label,
            ),
        )
        state.event_count += 1
        state.last_event_type = label
        state.agent_id = event.agent_id
        if event.user_id is not None:
            state.user_id = event.user_id
        state.first_seen = min(state.first_seen, event.timestamp)
        state.last_seen = max(state.last_seen, event.timestamp)
        state.status = _STATUS_BY_TYPE.get(event.event_type, state.status)
        if event.event_type is EventType.CHECKPOINT_SAVED:
            state.checkpoints += 1
        if event.event_type is EventType.ERROR_OCCURRED:
            state.last_error = event.error_message

    def reset(self) -> None:
        self.sessions.clear()

    def get(self, session_id: str) -> SessionState | None:
        return self.sessions.get(session_id)


class EventSourcingHandler:
    """Appends each event to ``event_store`` and applies new ones to ``projector``.

    Errors from the store or the projector propagate, so a consumer service
    retries the record; see the module docstring for why that is safe.
    """

    def __init__(
        self,
        event_store: EventStore,
        projector: Projector | None = None,
        *,
        rebuild_page_size: int = 1000,
    ) -> None:
        if not isinstance(event_store, EventStore):
            raise ConfigError(f"event_store must implement EventStore, got {event_store!r}")
        self.event_store = event_store
        self.projector: Projector = projector if projector is not None else SessionProjection()
        self.rebuild_page_size = require_positive_int("rebuild_page_size", rebuild_page_size)
        self._stale = False
        self.appended = 0
        self.duplicates = 0

    async def handle(self, event: SystemEvent) -> bool:
        """Persist ``event`` and project it; returns whether it was new."""
        if self._stale:
            await self.rebuild()
        if not await self.event_store.append(event):
            self.duplicates += 1
            return False
        self.appended += 1
        try:
            await self.update_state(event)
        except BaseException:
            self._stale = True
            raise
        return True

    async def __call__(self, event: SystemEvent) -> None:
        await self.handle(event)

    async def update_state(self, event: SystemEvent) -> None:
        """Apply one event to the projection (the seed's method name)."""
        await self.projector.apply(event)

    async def rebuild(self) -> int:
        """Reset the projection and replay the whole store into it, page by page; returns the count."""
        self.projector.reset()
        self._stale = True
        replayed = 0
        cursor: UUID | None = None
        while True:
            page = await self.event_store.read(after=cursor, limit=self.rebuild_page_size)
            for event in page:
                await self.projector.apply(event)
            replayed += len(page)
            if len(page) < self.rebuild_page_size:
                break
            cursor = page[-1].event_id
        self._stale = False
        return replayed
