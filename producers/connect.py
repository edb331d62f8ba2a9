"""Moved: the one start backoff lives in :mod:`agent_events.transport`.

Kept so existing imports keep working while callers migrate to
``from agent_events.transport import start_with_backoff`` (or the client factories).
"""

from __future__ import annotations

from agent_events.transport import BrokerUnreachable, start_with_backoff

__all__ = ["BrokerUnreachable", "start_with_backoff"]
