"""Shared by the windowed-aggregation integration tests: streams, an oracle, output reading.

Streams are in timestamp order overall, so every input partition is in order too: no
event is late, and the closed windows are a function of the events alone, whatever
the partitioning, interleaving, crashes or rebalances.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from agent_events.agent_runtime.events import EventType, SystemEvent
from agent_events.broker.capabilities import BrokerCapabilities
from agent_events.consumers.windows import (
    SessionSummary,
    WindowAggregate,
    WindowAggregateCodec,
    WindowProcessor,
)
from agent_events.consumers.windows.aggregations import WindowValues
from agent_events.producers.partitioner import partition_for_key

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
TYPES = (EventType.AGENT_STARTED, EventType.AGENT_COMPLETED, EventType.ERROR_OCCURRED)

Window = tuple[str, int, int]


def stream(
    count: int, *, step_ms: int = 250, agents: int = 4, sessions: int = 24
) -> list[SystemEvent]:
    """``count`` events ``step_ms`` apart, spread over agents, sessions and three types."""
    events = []
    for i in range(count):
        etype = TYPES[(i // 3) % 3]
        events.append(
            SystemEvent(
                event_type=etype,
                agent_id=f"agent-{i % agents}",
                session_id=f"session-{(i * 7) % sessions}",
                timestamp=START + timedelta(milliseconds=i * step_ms),
                execution_time_ms=(i * 37) % 1000 if etype is EventType.AGENT_COMPLETED else None,
                error_type="Timeout" if etype is EventType.ERROR_OCCURRED else None,
            )
        )
    return events


def session_stream(
    sessions: int, *, per_session: int = 12, stagger_ms: int = 4_000
) -> list[SystemEvent]:
    """``sessions`` agent sessions, overlapping in time, in timestamp order overall.

    Session ``j`` starts ``j * stagger_ms`` after :data:`START` and has ``per_session``
    events 500 ms apart, by two agents, with an error in the middle.
    """
    events = []
    for j in range(sessions):
        for k in range(per_session):
            etype = (
                EventType.AGENT_STARTED
                if k == 0
                else EventType.ERROR_OCCURRED
                if k == per_session // 2
                else EventType.AGENT_COMPLETED
            )
            events.append(
                SystemEvent(
                    event_type=etype,
                    agent_id=f"agent-{(j + k) % 3}" if k % 2 else f"agent-{j % 3}",
                    session_id=f"session-{j}",
                    timestamp=START + timedelta(milliseconds=j * stagger_ms + k * 500),
                    execution_time_ms=10 * k + j if etype is EventType.AGENT_COMPLETED else None,
                    error_type="Timeout" if etype is EventType.ERROR_OCCURRED else None,
                )
            )
    events.sort(key=lambda e: e.timestamp)
    return events


def session_summaries(
    events: list[SystemEvent], gap_ms: int, grace_ms: int, partitions: int
) -> dict[str, dict[str, Any]]:
    """Brute force: the sessions each partition's watermark closes, as summary fields.

    Events must be in order per session and at most ``gap_ms`` apart within one (as
    :func:`session_stream` makes them), so a session is simply all events of its id.
    """
    by_session: dict[str, list[SystemEvent]] = defaultdict(list)
    watermarks: dict[int, int] = defaultdict(int)
    for e in events:
        assert e.session_id is not None
        by_session[e.session_id].append(e)
        p = partition_for_key(e.session_id.encode(), partitions)
        watermarks[p] = max(watermarks[p], ms(e))
    found = {}
    for session, evs in by_session.items():
        first, last = min(map(ms, evs)), max(map(ms, evs))
        if (
            last + 1 + gap_ms + grace_ms
            > watermarks[partition_for_key(session.encode(), partitions)]
        ):
            continue  # still open
        types: dict[str, int] = defaultdict(int)
        for e in evs:
            types[e.event_type.value] += 1
        found[session] = {
            "start_ms": first,
            "end_ms": last,
            "event_count": len(evs),
            "events_by_type": dict(types),
            "error_count": sum(1 for e in evs if e.error_type is not None),
            "execution_time_ms_total": sum(e.execution_time_ms or 0 for e in evs),
            "agents": sorted({e.agent_id for e in evs}),
        }
    return found


def summary_fields(summary: SessionSummary) -> dict[str, Any]:
    """What :func:`session_summaries` computes, read off an emitted summary."""
    return {
        "start_ms": summary.start_ms,
        "end_ms": summary.end_ms,
        "event_count": summary.event_count,
        "events_by_type": summary.events_by_type,
        "error_count": summary.error_count,
        "execution_time_ms_total": summary.execution_time_ms_total,
        "agents": summary.agents,
    }


def as_sessions(rows: list[SessionSummary]) -> dict[str, dict[str, Any]]:
    """Final summaries by session id; fails on a session emitted twice."""
    found: dict[str, dict[str, Any]] = {}
    for row in rows:
        if row.final:
            assert row.session_id is not None
            assert row.session_id not in found, f"session {row.session_id} emitted twice"
            found[row.session_id] = summary_fields(row)
    return found


def ms(event: SystemEvent) -> int:
    return (event.timestamp - EPOCH) // timedelta(milliseconds=1)


def key_of(event: SystemEvent) -> str:
    return f'["{event.event_type.value}","{event.agent_id}"]'


def tumbling_oracle(
    events: list[SystemEvent], size_ms: int, grace_ms: int
) -> dict[Window, WindowValues]:
    """Every tumbling window the stream closes (``end + grace`` <= its largest timestamp)."""
    members: dict[Window, list[SystemEvent]] = defaultdict(list)
    for e in events:
        start = ms(e) - ms(e) % size_ms
        members[(key_of(e), start, start + size_ms)].append(e)
    watermark = max(ms(e) for e in events)
    return {w: values_of(evs) for w, evs in members.items() if w[2] + grace_ms <= watermark}


def values_of(events: list[SystemEvent]) -> WindowValues:
    durations = [e.execution_time_ms for e in events if e.execution_time_ms is not None]
    errors = sum(
        1 for e in events if e.error_type is not None or e.event_type is EventType.ERROR_OCCURRED
    )
    return WindowValues(
        count=len(events),
        execution_time_count=len(durations),
        execution_time_ms_sum=sum(durations),
        execution_time_ms_min=min(durations, default=None),
        execution_time_ms_max=max(durations, default=None),
        execution_time_ms_mean=sum(durations) / len(durations) if durations else None,
        error_count=errors,
        error_rate=errors / len(events),
        distinct_sessions=len({e.session_id for e in events}),
        reducers={},
    )


async def read_aggregates(
    bootstrap: str,
    topic: str,
    *,
    until: Callable[[list[Any]], bool],
    deadline_s: float = 60.0,
    settle_s: float = 1.0,
    decode: Callable[[bytes], Any] | None = None,
) -> list[Any]:
    """Read ``topic`` (read_committed) from the start until ``until(rows)``, then ``settle_s`` more.

    Polls rather than trusting end offsets, which Tansu reports wrong; reading on a little
    after the condition holds is what lets a duplicate show up.
    """
    decode = decode or WindowAggregateCodec().decode
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        isolation_level="read_committed",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    rows: list[WindowAggregate] = []
    try:
        partitions = consumer.partitions_for_topic(topic)
        give_up = time.monotonic() + deadline_s
        while not partitions:
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(topic)
            assert time.monotonic() < give_up, f"topic {topic} never appeared"
        consumer.assign([TopicPartition(topic, p) for p in partitions])
        settled_at: float | None = None
        while True:
            batch = await consumer.getmany(timeout_ms=200)
            rows += [decode(r.value) for recs in batch.values() for r in recs]
            now = time.monotonic()
            if settled_at is None and until(rows):
                settled_at = now + settle_s
            if settled_at is not None and now >= settled_at:
                return rows
            if now > give_up:
                raise AssertionError(
                    f"timed out after {deadline_s}s reading {topic}: {len(rows)} windows so far"
                )
    finally:
        await consumer.stop()


def as_windows(rows: list[WindowAggregate]) -> dict[Window, WindowValues]:
    """Final windows by identity; fails on a window emitted twice."""
    found: dict[Window, WindowValues] = {}
    for row in rows:
        if not row.final:
            continue
        window = (row.key, row.start_ms, row.end_ms)
        assert window not in found, f"window {window} emitted twice"
        found[window] = row.values
    return found


async def wait_until(condition: Callable[[], bool], deadline_s: float, what: str) -> None:
    """Poll state another process or task changes (nothing to await), up to a deadline."""
    try:
        async with asyncio.timeout(deadline_s):
            while not condition():  # noqa: ASYNC110
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"timed out after {deadline_s}s waiting for: {what}") from None


async def read_records(
    bootstrap: str, topic: str, count: int, deadline_s: float = 30.0
) -> list[object]:
    """The first ``count`` records of partition 0 of ``topic`` (read_committed)."""
    tp = TopicPartition(topic, 0)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, isolation_level="read_committed")
    await consumer.start()
    try:
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        found: list[object] = []
        async with asyncio.timeout(deadline_s):
            while len(found) < count:
                batch = await consumer.getmany(timeout_ms=200)
                found += [r for recs in batch.values() for r in recs]
        return found
    finally:
        await consumer.stop()


def guarantee(caps: BrokerCapabilities) -> str:
    """The strongest processing guarantee ``caps``' broker supports."""
    return "exactly_once" if caps.supports("transactions") else "at_least_once"


@asynccontextmanager
async def running(**settings: Any) -> AsyncIterator[WindowProcessor]:
    """A started processor whose run() goes on in the background until the block ends."""
    settings.setdefault("commit_interval_s", 0.2)
    settings.setdefault("idle_source_after_s", 1.0)
    settings.setdefault("session_timeout_ms", 6_000)
    settings.setdefault("heartbeat_interval_ms", 500)
    async with WindowProcessor(**settings) as processor:
        task = asyncio.create_task(processor.run())
        try:
            yield processor
            assert not task.done(), "the processor stopped by itself"
        finally:
            processor.request_stop()
            await asyncio.wait_for(task, 60)
