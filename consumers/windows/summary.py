"""The per-session summary: an agent session as one record, built on session windows.

A session window (``session:GAP``, keyed by ``session_id``) already counts events,
errors and ``execution_time_ms``; :data:`SESSION_REDUCERS` adds the events by type
and the agents involved, both mergeable, so sessions that a late event bridges merge
too. :meth:`SessionSummary.from_aggregate` reads a window result as a summary, and
:class:`SessionSummaryCodec` writes it as ``schemas/session_summary.avsc`` (Avro
single-object encoding), the value format of ``agent.events.sessions``.

Use it in a processor of your own::

    WindowProcessor(..., window="session:30m", reducers=SESSION_REDUCERS,
                    output_codec=SessionSummaryCodec())

or run the built-in service: ``agent-events consume sessions --window session:30m``.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Any, Final

from agent_events.agent_runtime.events import SystemEvent
from agent_events.agent_runtime.subscription import type_label
from agent_events.consumers.windows.aggregations import Reducer
from agent_events.consumers.windows.codec import WindowAggregate, ms_since_epoch
from agent_events.schemas.avro import AvroSchemaStore, SingleObjectCodec, load_schema

__all__ = [
    "SESSION_REDUCERS",
    "SESSION_SUMMARY_CONTENT_TYPE",
    "SESSION_SUMMARY_SCHEMA",
    "SessionSummary",
    "SessionSummaryCodec",
]

SESSION_SUMMARY_SCHEMA: Final[dict[str, Any]] = load_schema("session_summary")

SESSION_SUMMARY_CONTENT_TYPE: Final = (
    "application/avro; encoding=single-object; record=agent_events.SessionSummary"
)

_BY_TYPE: Final = "events_by_type"
_AGENTS: Final = "agents"


def _count_type(counts: dict[str, int], event: SystemEvent) -> dict[str, int]:
    label = type_label(event.event_type)
    counts[label] = counts.get(label, 0) + 1
    return counts


def _sum_counts(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
    merged = dict(a)
    for label, n in b.items():
        merged[label] = merged.get(label, 0) + n
    return merged


def _add_agent(agents: list[str], event: SystemEvent) -> list[str]:
    i = bisect.bisect_left(agents, event.agent_id)
    if i == len(agents) or agents[i] != event.agent_id:
        agents.insert(i, event.agent_id)
    return agents


def _union(a: list[str], b: list[str]) -> list[str]:
    return sorted(set(a) | set(b))


SESSION_REDUCERS: Final[tuple[Reducer[Any], ...]] = (
    Reducer[dict[str, int]](_BY_TYPE, initial=dict, add=_count_type, merge=_sum_counts),
    Reducer[list[str]](_AGENTS, initial=list, add=_add_agent, merge=_union),
)
"""The reducers a session summary needs on top of the built-in aggregates."""


@dataclass(frozen=True, slots=True)
class SessionSummary:
    """One agent session: when, how long, what happened, who took part."""

    source: str
    session_id: str | None
    key: str
    key_fields: dict[str, str | None]
    window: str
    start_ms: int
    """Event time of the first event."""
    end_ms: int
    """Event time of the last event (inclusive)."""
    final: bool
    event_count: int
    events_by_type: dict[str, int]
    error_count: int
    execution_time_ms_total: int
    execution_time_count: int
    agents: list[str]

    @property
    def duration_ms(self) -> int:
        """From the first event to the last."""
        return self.end_ms - self.start_ms

    @classmethod
    def from_aggregate(cls, aggregate: WindowAggregate) -> SessionSummary:
        """The summary of a session window computed with :data:`SESSION_REDUCERS`."""
        values = aggregate.values
        return cls(
            source=aggregate.source,
            session_id=aggregate.key_fields.get("session_id"),
            key=aggregate.key,
            key_fields=aggregate.key_fields,
            window=aggregate.window,
            start_ms=aggregate.start_ms,
            end_ms=aggregate.end_ms - 1,
            final=aggregate.final,
            event_count=values.count,
            events_by_type=dict(values.reducers.get(_BY_TYPE, {})),
            error_count=values.error_count,
            execution_time_ms_total=values.execution_time_ms_sum,
            execution_time_count=values.execution_time_count,
            agents=list(values.reducers.get(_AGENTS, [])),
        )


class SessionSummaryCodec:
    """Session window results -> ``SessionSummary`` Avro records, and summaries back.

    ``encode`` takes the :class:`WindowAggregate` a processor emits, so it plugs in as
    a processor's ``output_codec``; ``decode`` raises only ``DecodeError`` subclasses.
    """

    __slots__ = ("_avro",)

    content_type: Final = SESSION_SUMMARY_CONTENT_TYPE

    def __init__(self, store: AvroSchemaStore | None = None) -> None:
        self._avro = SingleObjectCodec(SESSION_SUMMARY_SCHEMA, store)

    def encode(self, aggregate: WindowAggregate) -> bytes:
        """The session's summary as single-object Avro bytes."""
        s = SessionSummary.from_aggregate(aggregate)
        return self._avro.encode(
            {
                "source": s.source,
                "session_id": s.session_id,
                "key": s.key,
                "key_fields": s.key_fields,
                "window": s.window,
                "session_start": s.start_ms,
                "session_end": s.end_ms,
                "duration_ms": s.duration_ms,
                "final": s.final,
                "event_count": s.event_count,
                "events_by_type": s.events_by_type,
                "error_count": s.error_count,
                "execution_time_ms_total": s.execution_time_ms_total,
                "execution_time_count": s.execution_time_count,
                "agents": s.agents,
            }
        )

    def decode(self, data: bytes) -> SessionSummary:
        """The summary encoded in ``data``."""
        r = self._avro.decode(data)
        return SessionSummary(
            source=r["source"],
            session_id=r["session_id"],
            key=r["key"],
            key_fields=dict(r["key_fields"]),
            window=r["window"],
            start_ms=ms_since_epoch(r["session_start"]),
            end_ms=ms_since_epoch(r["session_end"]),
            final=r["final"],
            event_count=r["event_count"],
            events_by_type=dict(r["events_by_type"]),
            error_count=r["error_count"],
            execution_time_ms_total=r["execution_time_ms_total"],
            execution_time_count=r["execution_time_count"],
            agents=list(r["agents"]),
        )
