"""The ``store`` service: every event persisted once, and per-session state derived from it.

Runs the spec's :class:`EventSourcingHandler` over a store chosen by URL:
``sqlite:///path.db`` (the default, :class:`SQLiteEventStore`) or
``postgresql://user:pass@host:port/db`` (:class:`PostgresEventStore`, the ``postgres``
extra). Both are idempotent on ``event_id``, so redeliveries, several processes of the
group and replays from the earliest offset never add a row twice.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from agent_events.agent_runtime.errors import ConfigError
from agent_events.consumers.handlers import (
    EventSourcingHandler,
    EventStore,
    PostgresEventStore,
    SessionProjection,
    SQLiteEventStore,
)
from agent_events.consumers.runtime import HandlerSpec
from agent_events.services._base import NamedHandler, Service
from agent_events.settings import AgentEventsSettings

__all__ = ["StoreService", "sqlite_path", "store_from_url"]


def sqlite_path(url: str) -> Path:
    """The file of ``sqlite:///relative.db`` or ``sqlite:////absolute.db``."""
    rest = url.removeprefix("sqlite://")
    if not rest.startswith("/") or rest == "/":
        raise ConfigError(
            f"a SQLite store url is sqlite:///relative/path.db or sqlite:////absolute/path.db, got {url!r}"
        )
    return Path(rest[1:])


def store_from_url(url: str) -> SQLiteEventStore | PostgresEventStore:
    """The event store a URL names (not opened yet)."""
    if url.startswith("sqlite://"):
        return SQLiteEventStore(sqlite_path(url))
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresEventStore(url)
    raise ConfigError(f"store url must start with sqlite:// or postgresql://, got {url!r}")


class StoreService(Service):
    """Appends each event to the store, then projects new ones into session state."""

    name = "store"

    def __init__(self, settings: AgentEventsSettings, registry: CollectorRegistry) -> None:
        super().__init__(settings, registry)
        self.store = store_from_url(settings.store.url)
        self.projection = SessionProjection()
        event_store: EventStore = self.store
        self.handler = EventSourcingHandler(event_store, self.projection)

    def handlers(self) -> list[HandlerSpec]:
        return [NamedHandler("store", self.handler)]

    async def start(self) -> None:
        if isinstance(self.store, SQLiteEventStore):
            path = sqlite_path(self.settings.store.url)
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                await self.store.open()
            except (OSError, sqlite3.Error) as exc:
                raise ConfigError(
                    f"cannot open the event store {path}: {exc}; give a --store-url in a "
                    "folder this user can write"
                ) from None
            return
        await self.store.open()

    async def stop(self) -> None:
        await self.store.close()

    async def summary(self) -> dict[str, Any]:
        return {
            "stored": await self.store.count(),
            "appended": self.handler.appended,
            "duplicates": self.handler.duplicates,
            "sessions": len(self.projection.sessions),
        }
