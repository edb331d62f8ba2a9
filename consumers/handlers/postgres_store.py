"""An :class:`EventStore` in PostgreSQL, through asyncpg (the ``postgres`` extra).

Idempotent on ``event_id`` like every store: the ``event_id`` column is ``UNIQUE`` and
``append`` is ``INSERT ... ON CONFLICT (event_id) DO NOTHING``, so any number of
consumer processes may append the same event concurrently (redelivery after a
rebalance, a replay from the earliest offset) and exactly one row exists afterwards.
The body is the event's JSON as text (not ``jsonb``, which rejects ``\\u0000`` and
would make the round trip lossy); the columns beside it are there to query.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit, urlunsplit
from uuid import UUID

from agent_events.agent_runtime.errors import AgentEventsError, ConfigError, SinkError
from agent_events.agent_runtime.event_bus import type_label
from agent_events.agent_runtime.events import SystemEvent, event_from_json, event_to_json
from agent_events.agent_runtime.resource import AsyncResource

__all__ = ["PostgresEventStore"]

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def _redacted(url: str) -> str:
    """``url`` without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


class PostgresEventStore(AsyncResource):
    """Events in table ``table`` of the PostgreSQL database at ``url`` (``postgresql://...``).

    Use ``async with PostgresEventStore(url) as store``. ``open`` creates the table
    if needed (under an advisory lock, so several processes starting at once do not
    race). Insertion order is the ``seq`` identity column.
    """

    def __init__(self, url: str, *, table: str = "agent_events", max_connections: int = 4) -> None:
        if not url.startswith(("postgresql://", "postgres://")):
            raise ConfigError(f"a PostgreSQL url starts with postgresql://, got {_redacted(url)!r}")
        if not _IDENTIFIER.match(table):
            raise ConfigError(f"table must be a lower-case SQL identifier, got {table!r}")
        self.url = url
        self.table = table
        self.max_connections = max_connections
        self._pool: Any = None

    async def open(self) -> None:
        """Connect and create the table and its index if they do not exist."""
        if self._pool is not None:
            return
        try:
            import asyncpg
        except ImportError:
            raise ConfigError(
                "the PostgreSQL store needs asyncpg: pip install 'agent-events[postgres]'"
            ) from None
        try:
            pool = await asyncpg.create_pool(self.url, min_size=1, max_size=self.max_connections)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise SinkError(
                f"cannot connect to PostgreSQL at {_redacted(self.url)}: {exc}; "
                "check that the server runs and the store url"
            ) from exc
        try:
            async with pool.acquire() as conn, conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", self.table)
                await conn.execute(
                    f"""
                    CREATE TABLE IF NOT EXISTS {self.table} (
                        seq          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                        event_id     UUID NOT NULL UNIQUE,
                        session_id   TEXT,
                        event_type   TEXT NOT NULL,
                        agent_id     TEXT NOT NULL,
                        "timestamp"  TIMESTAMPTZ NOT NULL,
                        body         TEXT NOT NULL
                    );
                    CREATE INDEX IF NOT EXISTS {self.table}_by_session
                        ON {self.table} (session_id, seq);
                    """
                )
        except BaseException:
            await pool.close()
            raise
        self._pool = pool

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    async def start(self) -> None:
        await self.open()

    async def stop(self) -> None:
        await self.close()

    def _require_open(self) -> Any:
        if self._pool is None:
            raise AgentEventsError(
                f"PostgresEventStore({_redacted(self.url)}) is not open; "
                "use `async with PostgresEventStore(url) as store` or await store.open()"
            )
        return self._pool

    async def append(self, event: SystemEvent) -> bool:
        """Store ``event``; ``False`` if an event with its ``event_id`` is already stored."""
        seq = await self._require_open().fetchval(
            f"INSERT INTO {self.table} "
            '(event_id, session_id, event_type, agent_id, "timestamp", body) '
            "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (event_id) DO NOTHING RETURNING seq",
            event.event_id,
            event.session_id,
            type_label(event.event_type),
            event.agent_id,
            event.timestamp,
            event_to_json(event),
        )
        return seq is not None

    async def read(
        self,
        session_id: str | None = None,
        after: UUID | None = None,
        limit: int | None = None,
    ) -> list[SystemEvent]:
        """Stored events in insertion order (see :meth:`EventStore.read`)."""
        if limit is not None and (
            isinstance(limit, bool) or not isinstance(limit, int) or limit < 0
        ):
            raise ConfigError(f"limit must be a non-negative integer or None, got {limit!r}")
        pool = self._require_open()
        start = 0
        if after is not None:
            found = await pool.fetchval(f"SELECT seq FROM {self.table} WHERE event_id = $1", after)
            if found is None:
                raise ConfigError(
                    f"read(after={after}) names an event that is not in the store; "
                    "pass the event_id of an event read from this store"
                )
            start = int(found)
        rows = await pool.fetch(
            f"SELECT body FROM {self.table} WHERE seq > $1 "
            "AND ($2::text IS NULL OR session_id = $2) ORDER BY seq LIMIT $3",
            start,
            session_id,
            limit,
        )
        return [event_from_json(row["body"]) for row in rows]

    async def count(self) -> int:
        """How many events are stored."""
        value = await self._require_open().fetchval(f"SELECT COUNT(*) FROM {self.table}")
        return int(value)
