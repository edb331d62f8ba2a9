"""Agent sessions and their checkpoints, kept in memory: :class:`SessionManager`.

It publishes the seed's session events: ``SESSION_CREATED``, ``SESSION_EXPIRED``,
``CHECKPOINT_SAVED`` and ``CHECKPOINT_RESTORED``. Memory is bounded: at most
``max_sessions`` sessions (the least recently active one is expired to make room)
and ``max_checkpoints`` checkpoints per session (the oldest is dropped).
"""

from __future__ import annotations

import copy
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, TypeAlias
from uuid import uuid4

from pydantic import JsonValue, TypeAdapter, ValidationError

from agent_events.agent_runtime.errors import ConfigError, SessionNotFound
from agent_events.agent_runtime.events import EventType, SystemEvent
from agent_events.agent_runtime.orchestration.publishing import EventPublisher

__all__ = ["Checkpoint", "ExpiryReason", "Session", "SessionManager"]

ExpiryReason: TypeAlias = Literal["expired", "idle", "capacity"]

_STATE = TypeAdapter(dict[str, JsonValue])


@dataclass(slots=True)
class Session:
    """One conversation of a user with an agent."""

    session_id: str
    agent_id: str
    user_id: str | None
    created_at: datetime
    last_active: float
    metadata: dict[str, JsonValue] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A saved copy of a session's state; later changes to the caller's dict do not leak in."""

    checkpoint_id: str
    session_id: str
    created_at: datetime
    state: dict[str, JsonValue]


class SessionManager:
    """Creates, expires and checkpoints sessions, publishing an event for each.

    Nothing runs in the background: call :meth:`expire_idle` from a periodic task
    you own. Session state changes before its event is published, so a handler of
    ``SESSION_EXPIRED`` already finds the session gone. Without a bus, nothing is
    published and everything else works the same.
    """

    def __init__(
        self,
        bus: EventPublisher | None = None,
        *,
        ttl: float = 1800.0,
        max_sessions: int = 10_000,
        max_checkpoints: int = 10,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if isinstance(ttl, bool) or not isinstance(ttl, int | float) or ttl <= 0:
            raise ConfigError(f"ttl must be a positive number of seconds, got {ttl!r}")
        for name, value in (("max_sessions", max_sessions), ("max_checkpoints", max_checkpoints)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        self.bus = bus
        self.ttl = float(ttl)
        self.max_sessions = max_sessions
        self.max_checkpoints = max_checkpoints
        self._clock = clock
        # Least recently active first, so capacity eviction and idle sweeps are cheap.
        self._sessions: OrderedDict[str, Session] = OrderedDict()
        self._checkpoints: dict[str, deque[Checkpoint]] = {}

    def __len__(self) -> int:
        return len(self._sessions)

    def get_session(self, session_id: str) -> Session | None:
        """The live session with this id, or ``None``."""
        return self._sessions.get(session_id)

    def touch(self, session_id: str) -> Session:
        """Mark a session active now, postponing its idle expiry."""
        session = self._require(session_id)
        session.last_active = self._clock()
        self._sessions.move_to_end(session_id)
        return session

    async def create_session(
        self,
        agent_id: str,
        user_id: str | None = None,
        *,
        session_id: str | None = None,
        metadata: Mapping[str, JsonValue] | None = None,
    ) -> Session:
        """Start a session (a new random id unless one is given); publishes ``SESSION_CREATED``.

        When ``max_sessions`` are live, the least recently active one is expired first
        (``SESSION_EXPIRED`` with reason ``capacity``).
        """
        if session_id is None:
            session_id = uuid4().hex
        elif not isinstance(session_id, str) or not session_id:
            raise ConfigError(f"session_id must be a non-empty string, got {session_id!r}")
        if session_id in self._sessions:
            raise ConfigError(
                f"session {session_id!r} already exists; pick another id or omit it for a new one"
            )
        if not isinstance(agent_id, str) or not agent_id:
            raise ConfigError(f"agent_id must be a non-empty string, got {agent_id!r}")
        session = Session(
            session_id=session_id,
            agent_id=agent_id,
            user_id=user_id,
            created_at=datetime.now(UTC),
            last_active=self._clock(),
            metadata=_json_copy(metadata or {}, "session metadata"),
        )
        while len(self._sessions) >= self.max_sessions:
            oldest = next(iter(self._sessions))
            await self.expire(oldest, reason="capacity")
        self._sessions[session_id] = session
        await self._emit(EventType.SESSION_CREATED, session, {"ttl_s": self.ttl})
        return session

    async def expire(self, session_id: str, *, reason: ExpiryReason = "expired") -> bool:
        """End a session and drop its checkpoints; publishes ``SESSION_EXPIRED``.

        Returns ``False`` (and publishes nothing) when the session is not live.
        """
        session = self._sessions.pop(session_id, None)
        if session is None:
            return False
        self._checkpoints.pop(session_id, None)
        idle_s = round(self._clock() - session.last_active, 3)
        await self._emit(EventType.SESSION_EXPIRED, session, {"reason": reason, "idle_s": idle_s})
        return True

    async def expire_idle(self) -> list[str]:
        """Expire every session idle for ``ttl`` seconds or more; their ids, oldest first."""
        now = self._clock()
        idle = [sid for sid, s in self._sessions.items() if now - s.last_active >= self.ttl]
        for session_id in idle:
            await self.expire(session_id, reason="idle")
        return idle

    async def save_checkpoint(self, session_id: str, state: Mapping[str, JsonValue]) -> str:
        """Keep a copy of ``state`` for the session; returns the checkpoint id.

        Publishes ``CHECKPOINT_SAVED`` with ``metadata["checkpoint_id"]``. Only the
        last ``max_checkpoints`` of a session are kept.
        """
        session = self.touch(session_id)
        checkpoint = Checkpoint(
            checkpoint_id=uuid4().hex,
            session_id=session_id,
            created_at=datetime.now(UTC),
            state=_json_copy(state, "checkpoint state"),
        )
        kept = self._checkpoints.setdefault(session_id, deque(maxlen=self.max_checkpoints))
        kept.append(checkpoint)
        await self._emit(
            EventType.CHECKPOINT_SAVED,
            session,
            {"checkpoint_id": checkpoint.checkpoint_id, "checkpoints_kept": len(kept)},
        )
        return checkpoint.checkpoint_id

    async def restore_checkpoint(
        self, session_id: str, checkpoint_id: str | None = None
    ) -> dict[str, JsonValue]:
        """A copy of a checkpoint's state (the latest when no id is given).

        Publishes ``CHECKPOINT_RESTORED`` with ``metadata["checkpoint_id"]``; raises
        :class:`SessionNotFound` for an unknown session or checkpoint.
        """
        session = self.touch(session_id)
        kept = self._checkpoints.get(session_id)
        checkpoint = _find(kept, checkpoint_id)
        if checkpoint is None:
            wanted = "any checkpoint" if checkpoint_id is None else f"checkpoint {checkpoint_id!r}"
            raise SessionNotFound(
                f"session {session_id!r} has no {wanted}; save one first (only the last "
                f"{self.max_checkpoints} of a session are kept)"
            )
        await self._emit(
            EventType.CHECKPOINT_RESTORED, session, {"checkpoint_id": checkpoint.checkpoint_id}
        )
        return copy.deepcopy(checkpoint.state)

    def list_checkpoints(self, session_id: str) -> list[Checkpoint]:
        """The checkpoints kept for a session, oldest first."""
        self._require(session_id)
        return list(self._checkpoints.get(session_id, ()))

    def _require(self, session_id: str) -> Session:
        session = self._sessions.get(session_id)
        if session is None:
            raise SessionNotFound(
                f"session {session_id!r} is not live (never created, or expired); "
                "create it with create_session()"
            )
        return session

    async def _emit(
        self, event_type: EventType, session: Session, metadata: dict[str, JsonValue]
    ) -> None:
        if self.bus is None:
            return
        await self.bus.publish(
            SystemEvent(
                event_type=event_type,
                agent_id=session.agent_id,
                user_id=session.user_id,
                session_id=session.session_id,
                metadata=metadata,
            )
        )


def _find(kept: deque[Checkpoint] | None, checkpoint_id: str | None) -> Checkpoint | None:
    if not kept:
        return None
    if checkpoint_id is None:
        return kept[-1]
    return next((c for c in kept if c.checkpoint_id == checkpoint_id), None)


def _json_copy(value: Mapping[str, Any], what: str) -> dict[str, JsonValue]:
    """A deep copy of ``value``, refusing anything that is not JSON."""
    try:
        validated = _STATE.validate_python(dict(value), strict=True)
    except (ValidationError, TypeError) as exc:
        raise ConfigError(
            f"{what} must be a mapping of strings to JSON values (str, int, float, bool, "
            f"None, lists, dicts): {exc}"
        ) from exc
    return copy.deepcopy(validated)
