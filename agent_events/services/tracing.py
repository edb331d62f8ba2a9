"""The ``tracing`` service: per-session timelines in SQLite, queryable after the fact.

Where the spec's :class:`EventTracer` keeps recent events in memory, this service keeps
every session's events in a SQLite file (WAL, so several processes of the group and
readers share it), idempotent on ``event_id``: a redelivered or replayed event adds
nothing. ``agent-events trace SESSION_ID`` reads a timeline with :func:`load_trace`.
Events without a session have no timeline and are counted as skipped.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import aiosqlite
from prometheus_client import CollectorRegistry

from agent_events.agent_runtime.errors import ConfigError, SinkError
from agent_events.agent_runtime.event_bus import type_label
from agent_events.agent_runtime.events import SystemEvent
from agent_events.agent_runtime.resource import AsyncResource
from agent_events.consumers.runtime import HandlerSpec
from agent_events.services._base import NamedHandler, Service
from agent_events.settings import AgentEventsSettings

__all__ = ["TraceStore", "TracingService", "load_trace", "trace_sessions"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS timeline (
    seq               INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id          TEXT NOT NULL UNIQUE,
    session_id        TEXT NOT NULL,
    ts_us             INTEGER NOT NULL,
    timestamp         TEXT NOT NULL,
    event_type        TEXT NOT NULL,
    agent_id          TEXT NOT NULL,
    user_id           TEXT,
    execution_time_ms INTEGER,
    error_type        TEXT,
    error_message     TEXT,
    metadata          TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS timeline_by_session ON timeline (session_id, ts_us, seq);
"""

_COLUMNS = (
    "event_id, session_id, ts_us, timestamp, event_type, agent_id, user_id, "
    "execution_time_ms, error_type, error_message, metadata"
)
_BUSY_TIMEOUT_MS = 10_000


class TraceStore(AsyncResource):
    """Session timelines in one SQLite file; ``add`` commits before it returns."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._db: aiosqlite.Connection | None = None

    async def start(self) -> None:
        if self._db is not None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = await aiosqlite.connect(self.path)
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(f"cannot open the trace database {self.path}: {exc}") from exc
        try:
            await db.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
            await db.execute("PRAGMA journal_mode=WAL")
            await db.execute("PRAGMA synchronous=NORMAL")
            await db.executescript(_SCHEMA)
            await db.commit()
        except BaseException:
            await db.close()
            raise
        self._db = db

    async def stop(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            await db.close()

    async def add(self, event: SystemEvent) -> bool:
        """Add ``event`` to its session's timeline; ``False`` if it has no session or is known."""
        if event.session_id is None:
            return False
        if self._db is None:
            raise SinkError(f"the trace store {self.path} is not open")
        cursor = await self._db.execute(
            f"INSERT OR IGNORE INTO timeline ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                str(event.event_id),
                event.session_id,
                int(event.timestamp.timestamp() * 1_000_000),
                event.timestamp.isoformat(),
                type_label(event.event_type),
                event.agent_id,
                event.user_id,
                event.execution_time_ms,
                event.error_type,
                event.error_message,
                json.dumps(event.metadata, separators=(",", ":")),
            ),
        )
        added = cursor.rowcount == 1
        await cursor.close()
        await self._db.commit()
        return added


def _connect_read_only(path: str | Path) -> sqlite3.Connection:
    location = Path(path)
    if not location.is_file():
        raise ConfigError(
            f"no trace database at {location}; run 'agent-events consume tracing' first "
            "or point to its file (tracing.path / AGENT_EVENTS_TRACING__PATH)"
        )
    try:
        db = sqlite3.connect(f"{location.resolve().as_uri()}?mode=ro", uri=True)
        db.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
    except sqlite3.Error as exc:
        raise ConfigError(f"cannot read the trace database {location}: {exc}") from exc
    return db


def load_trace(path: str | Path, session_id: str) -> list[dict[str, Any]]:
    """The timeline of ``session_id``, oldest event first (``[]`` for an unknown session).

    Each entry has ``event_id``, ``session_id``, ``timestamp`` (ISO 8601 UTC),
    ``offset_ms`` (since the session's first event), ``event_type``, ``agent_id``,
    ``user_id``, ``execution_time_ms``, ``error_type``, ``error_message`` and
    ``metadata``. Blocking (sqlite3): call it from a thread inside an event loop.
    """
    db = _connect_read_only(path)
    try:
        rows = db.execute(
            f"SELECT {_COLUMNS} FROM timeline WHERE session_id = ? ORDER BY ts_us, seq",
            (session_id,),
        ).fetchall()
    except sqlite3.Error as exc:
        raise ConfigError(f"cannot read the trace database {path}: {exc}") from exc
    finally:
        db.close()
    if not rows:
        return []
    first_us = rows[0][2]
    return [
        {
            "event_id": row[0],
            "session_id": row[1],
            "timestamp": row[3],
            "offset_ms": (row[2] - first_us) / 1000,
            "event_type": row[4],
            "agent_id": row[5],
            "user_id": row[6],
            "execution_time_ms": row[7],
            "error_type": row[8],
            "error_message": row[9],
            "metadata": json.loads(row[10]),
        }
        for row in rows
    ]


def trace_sessions(path: str | Path, limit: int = 20) -> list[dict[str, Any]]:
    """The most recently active sessions: ``session_id``, ``events``, ``first``, ``last``."""
    db = _connect_read_only(path)
    try:
        rows = db.execute(
            "SELECT session_id, COUNT(*), MIN(timestamp), MAX(timestamp), MAX(ts_us) AS last_us "
            "FROM timeline GROUP BY session_id ORDER BY last_us DESC LIMIT ?",
            (limit,),
        ).fetchall()
    except sqlite3.Error as exc:
        raise ConfigError(f"cannot read the trace database {path}: {exc}") from exc
    finally:
        db.close()
    return [{"session_id": r[0], "events": r[1], "first": r[2], "last": r[3]} for r in rows]


class TracingService(Service):
    """Writes every event with a session to the timeline database ``tracing.path``."""

    name = "tracing"

    def __init__(self, settings: AgentEventsSettings, registry: CollectorRegistry) -> None:
        super().__init__(settings, registry)
        self.store = TraceStore(settings.tracing.path)
        self.added = 0
        self.skipped = 0

    async def _trace(self, event: SystemEvent) -> None:
        if await self.store.add(event):
            self.added += 1
        else:
            self.skipped += 1

    def handlers(self) -> list[HandlerSpec]:
        return [NamedHandler("tracing", self._trace)]

    async def start(self) -> None:
        await self.store.start()

    async def stop(self) -> None:
        await self.store.stop()

    async def summary(self) -> dict[str, Any]:
        return {"path": str(self.store.path), "added": self.added, "skipped": self.skipped}
