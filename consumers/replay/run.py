"""Running a replay: read the planned ranges, filter, deliver to a sink, report.

For every record, in offset order per partition:

1. a session replay skips records whose key is not the session's (its partition holds
   other sessions too);
2. a type filter reads the ``event_type`` header (decoding only records without one);
3. the value is decoded if the sink or an agent filter needs the event; a record that
   cannot be decoded is counted, logged with its offset, and skipped;
4. the sink gets the record and event; the next record waits until it returned, so a
   handler sees a partition's events in order and a failing sink stops the replay there;
5. ``count`` delivered events end the replay early; ``rate`` paces deliveries.

The replay reads with a group-less consumer (``consumers.scan``): it commits nothing and
never moves any consumer group's offsets.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from agent_events.agent_runtime.errors import ConfigError, DecodeError
from agent_events.agent_runtime.event_bus import type_label
from agent_events.agent_runtime.events import SystemEvent
from agent_events.consumers.replay.plan import FeatureCheck, ReplayPlan, resolve_plan
from agent_events.consumers.replay.sinks import ReplaySink
from agent_events.consumers.replay.spec import ReplaySpec
from agent_events.consumers.scan import scan_in_time_order, standalone_consumer
from agent_events.producers.config import KafkaConnectionConfig
from agent_events.producers.headers import EVENT_TYPE_HEADER
from agent_events.schemas.codec import EventCodec

__all__ = ["ProgressCallback", "ReplayProgress", "ReplayReport", "plan_replay", "replay"]

logger = logging.getLogger(__name__)

_PROGRESS_EVERY_S = 0.1
_PACING_SLACK_S = 0.01


@dataclass(slots=True)
class ReplayProgress:
    """Counts so far; ``position`` and ``total`` are offsets, for a progress bar."""

    total: int
    position: int = 0
    read: int = 0
    delivered: int = 0
    filtered: int = 0
    undecodable: int = 0


ProgressCallback = Callable[[ReplayProgress], None]


@dataclass(slots=True)
class ReplayReport:
    """What a replay did: counts, the last offset read per partition, and why it stopped."""

    plan: ReplayPlan
    read: int = 0
    delivered: int = 0
    filtered: int = 0
    undecodable: int = 0
    elapsed_s: float = 0.0
    stopped_by: Literal["end", "count"] = "end"
    last_offsets: dict[int, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        return {
            "topic": self.plan.topic,
            "read": self.read,
            "delivered": self.delivered,
            "filtered": self.filtered,
            "undecodable": self.undecodable,
            "elapsed_s": round(self.elapsed_s, 3),
            "stopped_by": self.stopped_by,
            "last_offsets": {str(p): o for p, o in sorted(self.last_offsets.items())},
        }


async def plan_replay(
    connection: KafkaConnectionConfig,
    spec: ReplaySpec,
    *,
    check_feature: FeatureCheck | None = None,
) -> ReplayPlan:
    """The offsets ``spec`` would read, without reading a record (a dry run).

    ``check_feature`` is awaited before offsets-for-times are used, so a broker that
    answers them wrongly is refused instead of trusted (see :class:`FeatureCheck`).
    """
    async with standalone_consumer(connection) as consumer:
        return await resolve_plan(consumer, spec, check_feature=check_feature)


async def replay(
    connection: KafkaConnectionConfig,
    spec: ReplaySpec,
    sink: ReplaySink,
    *,
    plan: ReplayPlan | None = None,
    rate: float | None = None,
    check_feature: FeatureCheck | None = None,
    on_progress: ProgressCallback | None = None,
    codec: EventCodec | None = None,
) -> ReplayReport:
    """Replay ``spec`` into ``sink``; returns once the sink has written everything.

    ``plan`` reuses an earlier :func:`plan_replay` (so a dry run and the run agree);
    ``rate`` caps deliveries per second; ``on_progress`` is called about ten times a second
    and once at the end. Exceptions from the sink propagate with a note naming the record.
    """
    if rate is not None and rate <= 0:
        raise ConfigError(f"rate must be > 0 events per second, got {rate}")
    if plan is not None and plan.spec != spec:
        raise ConfigError("the plan was made for another replay spec")
    codec = codec or EventCodec()
    started = time.monotonic()
    async with standalone_consumer(connection) as consumer:
        if plan is None:
            plan = await resolve_plan(consumer, spec, check_feature=check_feature)
        report = ReplayReport(plan)
        progress = ReplayProgress(total=plan.records)
        async with sink:
            await _deliver(consumer, plan, sink, codec, report, progress, rate, on_progress)
    report.elapsed_s = time.monotonic() - started
    if report.stopped_by == "end":
        progress.position = progress.total
    if on_progress is not None:
        on_progress(progress)
    return report


async def _deliver(
    consumer: Any,
    plan: ReplayPlan,
    sink: ReplaySink,
    codec: EventCodec,
    report: ReplayReport,
    progress: ReplayProgress,
    rate: float | None,
    on_progress: ProgressCallback | None,
) -> None:
    spec = plan.spec
    key = plan.session_key
    types = {t.encode() for t in spec.event_types}
    agents = spec.agent_ids
    decode = sink.needs_event or bool(agents)
    count = spec.count
    next_offset = {r.partition: r.start for r in plan.ranges}
    last_offsets = report.last_offsets
    started = last_report = time.monotonic()
    # Oldest first across partitions, the same order on every run; an async generator,
    # closed when a count ends the replay early.
    records = cast(
        AsyncGenerator[Any, None],
        scan_in_time_order(consumer, plan.topic_partitions(), plan.starts(), plan.stops()),
    )
    async with aclosing(records):
        async for record in records:
            partition, offset = record.partition, record.offset
            progress.position += offset + 1 - next_offset[partition]
            next_offset[partition] = offset + 1
            last_offsets[partition] = offset
            progress.read += 1
            if codec.needs_prepare:  # a registry codec: fetch an unseen writer schema id
                await codec.prepare(record.value)
            event = _select(record, key, types, agents, decode, codec, progress)
            if event is False:
                continue
            try:
                await sink.write(record, event)
            except Exception as exc:
                exc.add_note(
                    f"while replaying {record.topic}[{partition}] offset {offset} "
                    f"into {sink.description}"
                )
                raise
            progress.delivered += 1
            now = time.monotonic()
            if rate is not None:
                ahead = started + progress.delivered / rate - now
                if ahead > _PACING_SLACK_S:
                    await asyncio.sleep(ahead)
            if on_progress is not None and now - last_report >= _PROGRESS_EVERY_S:
                last_report = now
                on_progress(progress)
            if count is not None and progress.delivered >= count:
                report.stopped_by = "count"
                break
    report.read = progress.read
    report.delivered = progress.delivered
    report.filtered = progress.filtered
    report.undecodable = progress.undecodable


def _select(
    record: Any,
    key: bytes | None,
    types: set[bytes],
    agents: frozenset[str],
    decode: bool,
    codec: EventCodec,
    progress: ReplayProgress,
) -> SystemEvent | Literal[False] | None:
    """The event to deliver (``None`` when the sink needs none), or ``False`` to skip."""
    if key is not None and record.key != key:
        progress.filtered += 1
        return False
    type_header: bytes | None = None
    if types:
        for name, value in record.headers or ():
            if name == EVENT_TYPE_HEADER:
                type_header = value
        if type_header is not None and type_header not in types:
            progress.filtered += 1
            return False
    if not decode and (not types or type_header is not None):
        return None
    try:
        if record.value is None:
            raise DecodeError("the record has no value (a tombstone)")
        event = codec.decode(record.value)
    except DecodeError as exc:
        progress.undecodable += 1
        logger.warning(
            "skipping %s[%d] offset %d: it cannot be decoded (%s)",
            record.topic,
            record.partition,
            record.offset,
            exc,
        )
        return False
    if (type_header is None and types and type_label(event.event_type).encode() not in types) or (
        agents and event.agent_id not in agents
    ):
        progress.filtered += 1
        return False
    return event if decode else None
