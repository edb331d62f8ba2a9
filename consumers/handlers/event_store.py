"""Append-only event stores for event sourcing (best practice 4).

Every store is idempotent on ``event_id``: appending an event that is already
stored does nothing and returns ``False``, so an at-least-once consumer can
append on every delivery. Reads return events in insertion order.
"""

from __future__ import annotations

from collections import deque
from pathlib import Path
from types import TracebackType
from typing import Protocol, Self, runtime_checkable
from uuid import UUID

import aiosqlite

from agent_events.agent_runtime.errors import AgentEventsError, ConfigError
from agent_events.agent_runtime.event_bus import type_label
from agent_events.agent_runtime.events import SystemEvent, event_from_json, event_to_json
from agent_events.agent_runtime.lru import require_positive_int

__all__ = ["EventStore", "InMemoryEventStore", "SQLiteEventStore"]


@runtime_checkable
class EventStore(Protocol):
    """Where an :class:`EventSourcingHandler` appends events."""

    async def append(self, event: SystemEvent) -> bool:
        """Store ``event``; ``False`` if an event with its ``event_id`` is already stored."""
        ...

    async def read(
        self,
        session_id: str | None = None,
        after: UUID | None = None,
        limit: int | None = None,
    ) -> list[SystemEvent]:
        """Stored events in insertion order.

        ``session_id``: only that session's events. ``after``: only events stored
        after the event with that id (a cursor: pass the last id of the previous
        page). ``limit``: at most that many.
        """
        ...

    async def count(self) -> int:
        """How many events are stored."""
        ...


def _check_limit(limit: int | None) -> None:
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise ConfigError(f"limit must be a non-negative integer or None, got {limit!r}")


def _unknown_cursor(after: UUID) -> ConfigError:
    return ConfigError(
        f"read(after={after}) names an event that is not in the store; "
        "pass the event_id of an event read from this store"
    )


class InMemoryEventStore:
    """An :class:`EventStore` in a bounded in-memory log, for tests and single-process use.

    It keeps the newest ``max_events`` events (like a topic's retention): older
    ones are forgotten, and so is their id for deduplication.
    """

    def __init__(self, max_events: int = 100_000) -> None:
        self.max_events = require_positive_int("max_events", max_events)
        self._log: deque[tuple[int, SystemEvent]] = deque()
        self._positions: dict[UUID, int] = {}
        self._next = 0

    async def append(self, event: SystemEvent) -> bool:
        if event.event_id in self._positions:
            return False
        if len(self._log) >= self.max_events:
            _, oldest = self._log.popleft()
            del self._positions[oldest.event_id]
        self._next += 1
        self._log.append((self._next, event))
        self._positions[event.event_id] = self._next
        return True

    async def read(
        self,
        session_id: str | None = None,
        after: UUID | None = None,
        limit: int | None = None,
    ) -> list[SystemEvent]:
        _check_limit(limit)
        start = 0
        if after is not None:
            position = self._positions.get(after)
            if position is None:
                raise _unknown_cursor(after)
            start = position
        found: list[SystemEvent] = []
        for position, event in self._log:
            if limit is not None and len(found) >= limit:
                break
            if position > start and (session_id is None or event.session_id == session_id):
                found.append(event)
        return found

    async def count(self) -> int:
        return len(self._log)


_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id   TEXT NOT NULL UNIQUE,
    session_id TEXT,
    event_type TEXT NOT NULL,
    timestamp  TEXT NOT NULL,
    body       TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_session ON events (session_id, seq);
"""


class SQLiteEventStore:
    """An :class:`EventStore` in a SQLite file, through aiosqlite (no blocking on the loop).

    Use ``async with SQLiteEventStore(path) as store``. Each event is stored as
    its JSON (:func:`event_to_json`, any metadata depth the codec accepts); ``append``
    commits before it returns, so an appended event survives a crash and a reopen.
    Insertion order is an ``AUTOINCREMENT`` sequence, never reused.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = path
        self._db: aiosqlite.Connection | None = None

    async def open(self) -> None:
        """Open (and if needed create) the database."""
        if self._db is not None:
            return
        db = await aiosqlite.connect(self.path)
        try:
            await db.execute("PRAGMA journal_mode=WAL")
            await db.execute("PRAGMA synchronous=NORMAL")
            await db.executescript(_SCHEMA)
            await db.commit()
        except BaseException:
            await db.close()
            raise
        self._db = db

    async def close(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            await db.close()

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def _conn(self) -> aiosqlite.Connection:
        if self._db is None:
            raise AgentEventsError(
                f"SQLiteEventStore({self.path!s}) is not open; "
                "use `async with SQLiteEventStore(path) as store` or await store.open()"
            )
        return self._db

    async def append(self, event: SystemEvent) -> bool:
        db = self._conn()
        cursor = await db.execute(
            "INSERT OR IGNORE INTO events (event_id, session_id, event_type, timestamp, body) "
            "VALUES (?, ?, ?, ?, ?)",
            (
                str(event.event_id),
                event.session_id,
                type_label(event.event_type),
                event.timestamp.isoformat(),
                event_to_json(event),
            ),
        )
        inserted = cursor.rowcount == 1
        await cursor.close()
        await db.commit()
        return inserted

    async def read(
        self,
        session_id: str | None = None,
        after: UUID | None = None,
        limit: int | None = None,
    ) -> list[SystemEvent]:
        _check_limit(limit)
        db = self._conn()
        start = 0
        if after is not None:
            async with db.execute(
                "SELECT seq FROM events WHERE event_id = ?", (str(after),)
            ) as cursor:
                row = await cursor.fetchone()
            if row is None:
                raise _unknown_cursor(after)
            start = int(row[0])
        async with db.execute(
            "SELECT body FROM events WHERE seq > ? AND (? IS NULL OR session_id = ?) "
            "ORDER BY seq LIMIT ?",
            (start, session_id, session_id, -1 if limit is None else limit),
        ) as cursor:
            rows = await cursor.fetchall()
        return [event_from_json(row[0]) for row in rows]

    async def count(self) -> int:
        async with self._conn().execute("SELECT COUNT(*) FROM events") as cursor:
            row = await cursor.fetchone()
        return int(row[0]) if row is not None else 0
