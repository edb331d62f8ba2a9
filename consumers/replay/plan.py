"""From a :class:`ReplaySpec` to offsets: which partitions, from where, up to where.

Planning reads only offsets (beginning, end, offsets-for-times), never records, so a dry run
is cheap and says exactly what a replay would read. The end of each partition is taken once,
at planning time: a replay always finishes, however fast producers keep writing.

Two brokers answer offset questions wrongly, and both are handled here rather than trusted:

* some brokers (Tansu) answer ``ListOffsets(latest)`` with the base offset of the last
  record *batch* plus one, so a topic of 110 records written in one batch "ends" at 1;
  :func:`consumers.scan.log_end_offsets` checks the answer against a fetch where the
  broker's capabilities say it must;
* some brokers answer ``offsets_for_times`` with offset 0 whatever the timestamp. A plan
  that needs timestamps first awaits the ``check_feature`` the caller passes (the CLI's
  reads the broker's features with ``agent_events.consumers.capabilities`` and raises
  :class:`~agent_runtime.errors.UnsupportedByBroker` there).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from agent_events.agent_runtime.errors import ConfigError
from agent_events.consumers.replay.spec import (
    FromBeginning,
    FromOffsets,
    FromShift,
    FromTime,
    ReplaySpec,
    UntilEnd,
    UntilTime,
    epoch_ms,
)
from agent_events.consumers.scan import log_end_offsets, topic_partitions
from agent_events.producers.partitioner import partition_for_key

__all__ = ["FeatureCheck", "PartitionRange", "ReplayPlan", "resolve_plan"]


class FeatureCheck(Protocol):
    """Raises if the broker lacks ``feature`` (a name of ``agent_events.broker.FEATURES``).

    Called only once the broker answered, so a check behind it (the CLI's reads the broker's
    ``ApiVersions`` with ``detect_capabilities`` and raises with ``require``) never mistakes an unreachable
    broker for one that lacks the feature.
    """

    async def __call__(self, feature: str, *, operation: str) -> None: ...


@dataclass(frozen=True, slots=True)
class PartitionRange:
    """One partition's part of a replay: offsets ``start`` (inclusive) to ``stop`` (exclusive).

    ``log_start`` and ``log_end`` are the partition's first offset and next offset when the
    plan was made, for reports.
    """

    partition: int
    start: int
    stop: int
    log_start: int
    log_end: int

    @property
    def records(self) -> int:
        """Offsets in the range: the records read, before filters (fewer on compacted topics)."""
        return max(0, self.stop - self.start)


@dataclass(frozen=True, slots=True)
class ReplayPlan:
    """The offsets a replay reads, per partition, and what it keeps of them."""

    spec: ReplaySpec
    ranges: tuple[PartitionRange, ...]
    partition_count: int
    """How many partitions the topic has (the scope may be fewer)."""

    @property
    def topic(self) -> str:
        return self.spec.topic

    @property
    def records(self) -> int:
        """Offsets to read over all partitions, before filters."""
        return sum(r.records for r in self.ranges)

    @property
    def session_key(self) -> bytes | None:
        """The record key a session replay keeps, or ``None``."""
        session = self.spec.session_id
        return session.encode() if session is not None else None

    def topic_partitions(self) -> list[TopicPartition]:
        return [TopicPartition(self.topic, r.partition) for r in self.ranges]

    def starts(self) -> dict[TopicPartition, int]:
        return {TopicPartition(self.topic, r.partition): r.start for r in self.ranges}

    def stops(self) -> dict[TopicPartition, int]:
        return {TopicPartition(self.topic, r.partition): r.stop for r in self.ranges}

    def to_json(self) -> dict[str, object]:
        """The plan as JSON data (the CLI's ``--dry-run --json``)."""
        return {
            "topic": self.topic,
            "session_id": self.spec.session_id,
            "records": self.records,
            "partitions": [
                {
                    "partition": r.partition,
                    "start_offset": r.start,
                    "stop_offset": r.stop,
                    "records": r.records,
                    "log_start_offset": r.log_start,
                    "log_end_offset": r.log_end,
                }
                for r in self.ranges
            ],
        }


async def resolve_plan(
    consumer: AIOKafkaConsumer, spec: ReplaySpec, *, check_feature: FeatureCheck | None = None
) -> ReplayPlan:
    """Resolve ``spec`` against the broker into a :class:`ReplayPlan`.

    ``consumer`` is a group-less consumer (``consumers.scan.standalone_consumer``); its
    assignment is changed. Raises :class:`ConfigError` for an unknown topic or partition,
    an offset outside a partition's log, or a session outside the chosen partitions.
    """
    all_parts = await topic_partitions(consumer, spec.topic)
    partition_count = len(all_parts)
    chosen = _scope(spec, partition_count)
    tps = await topic_partitions(consumer, spec.topic, chosen)
    begin = await consumer.beginning_offsets(tps)
    end = await log_end_offsets(consumer, tps)
    times: dict[str, dict[TopicPartition, int | None]] = {}
    for label, moment in (("start", _moment(spec.start)), ("stop", _moment(spec.stop))):
        if moment is not None:
            if check_feature is not None:
                flag = "--from-time" if label == "start" else "--until-time"
                await check_feature("offsets_for_times", operation=f"replay {flag}")
            found = await consumer.offsets_for_times({tp: epoch_ms(moment) for tp in tps})
            times[label] = {tp: None if f is None else f.offset for tp, f in found.items()}
    ranges = []
    for tp in tps:
        first, last = begin[tp], end[tp]
        start = _resolve_start(spec, tp, first, last, times.get("start", {}))
        stop = _resolve_stop(spec, tp, first, last, times.get("stop", {}))
        if stop < start:
            raise ConfigError(
                f"{tp.topic}[{tp.partition}]: the stop offset {stop} is before the start "
                f"offset {start}"
            )
        ranges.append(PartitionRange(tp.partition, start, stop, first, last))
    return ReplayPlan(spec, tuple(ranges), partition_count)


def _scope(spec: ReplaySpec, partition_count: int) -> list[int] | None:
    chosen: list[int] | None = list(spec.partitions) if spec.partitions is not None else None
    mapped = next(
        (
            sorted(o.offsets)
            for o in (spec.start, spec.stop)
            if isinstance(o, FromOffsets) and not isinstance(o.offsets, int)
        ),
        None,
    )
    if chosen is None and mapped is not None:
        chosen = mapped
    if spec.session_id is not None:
        home = partition_for_key(spec.session_id.encode(), partition_count)
        if chosen is not None and home not in chosen:
            raise ConfigError(
                f"session {spec.session_id!r} lives on partition {home} of {spec.topic!r}, "
                f"which is not among the chosen partitions {chosen}"
            )
        chosen = [home]
    return chosen


def _moment(bound: object) -> datetime | None:
    return bound.moment if isinstance(bound, FromTime | UntilTime) else None


def _out_of_range(tp: TopicPartition, what: str, offset: int, first: int, last: int) -> ConfigError:
    held = f"offsets {first}..{last - 1}" if last > first else "no records"
    return ConfigError(
        f"{what} offset {offset} is out of range for {tp.topic}[{tp.partition}], which holds "
        f"{held} (its next offset is {last})"
    )


def _resolve_start(
    spec: ReplaySpec,
    tp: TopicPartition,
    first: int,
    last: int,
    by_time: Mapping[TopicPartition, int | None],
) -> int:
    start = spec.start
    if isinstance(start, FromBeginning):
        return first
    if isinstance(start, FromShift):
        return max(first, last - start.records)
    if isinstance(start, FromTime):
        found = by_time.get(tp)
        return last if found is None else max(first, found)
    offset = start.offsets if isinstance(start.offsets, int) else start.offsets.get(tp.partition)
    if offset is None:
        raise ConfigError(f"no start offset is given for partition {tp.partition}")
    if not first <= offset <= last:
        raise _out_of_range(tp, "start", offset, first, last)
    return offset


def _resolve_stop(
    spec: ReplaySpec,
    tp: TopicPartition,
    first: int,
    last: int,
    by_time: Mapping[TopicPartition, int | None],
) -> int:
    stop = spec.stop
    if isinstance(stop, UntilEnd):
        return last
    if isinstance(stop, UntilTime):
        found = by_time.get(tp)
        return last if found is None else min(last, max(first, found))
    offsets = stop.offsets
    offset = offsets if isinstance(offsets, int) else offsets.get(tp.partition)
    if offset is None:
        return last
    if offset > last:
        raise _out_of_range(tp, "stop", offset, first, last)
    return max(first, offset)
