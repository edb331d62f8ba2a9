"""The ``sessions`` service: one summary record per agent session, on its own Avro topic.

Session windows (``session:GAP``, keyed by ``session_id``) over ``agent.events``; when a
session has been quiet for the gap (plus grace), its summary (start, end, duration,
events by type, errors, total ``execution_time_ms``, agents) is written to
``agent.events.sessions`` as ``schemas/session_summary.avsc``. It is the ``aggregate``
service with other reducers and another output codec, so state, restore, exactly-once
commits, late events, metrics and the SIGTERM drain are the same.

::

    agent-events consume sessions --window session:30m --grace 1m
"""

from __future__ import annotations

from typing import Any

from agent_events.consumers.windows import (
    SESSION_REDUCERS,
    Reducer,
    SessionSummaryCodec,
    WindowSettings,
)
from agent_events.consumers.windows.codec import AggregateEncoder
from agent_events.services.aggregate import AggregateService

__all__ = ["SessionsService"]


class SessionsService(AggregateService):
    """Agent-session summaries over ``settings.topic``, as configured by ``settings.sessions``."""

    name = "sessions"
    reducers: tuple[Reducer[Any], ...] = SESSION_REDUCERS

    def section(self) -> WindowSettings:
        return self.settings.sessions

    def output_codec(self) -> AggregateEncoder:
        return SessionSummaryCodec()
