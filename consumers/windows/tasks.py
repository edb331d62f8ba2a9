"""The work of one assigned partition between two commits, as records to write.

A task turns consumed records into :class:`Outgoing` records and, for an aggregating
task, changelog records; it never talks to Kafka itself, so a commit (transactional
or not) writes exactly what the task accumulated, and a failed commit is undone by
dropping the task and restoring its state from the changelog.

* :class:`~consumers.windows.rekey.RekeyTask` (an input partition, when
  repartitioning): each event is sent to the repartition topic unchanged, keyed by
  its window key.
* :class:`AggregateTask` (a repartition partition, or an input partition without
  repartitioning): each event goes through the partition's :class:`WindowEngine`;
  closed windows become output records, late events optionally side records,
  alerts alert records.

Records below the task's ``next_offset`` are skipped: after a seek the fetcher may
still hand over a record the state already reflects. Every other record goes through
:func:`consumers.intake.admit`, as in the handler services: a re-drive addressed to
another group is skipped (never counted twice), and an undecodable record (tombstone,
empty, garbage) becomes a dead letter written with the commit, so the partition moves on.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from aiokafka.structs import TopicPartition

from agent_events.agent_runtime.events import SystemEvent
from agent_events.consumers.copies import CopySizes, without_value
from agent_events.consumers.dlq import ERROR_HEADER_PREFIX, DeadLetter, dead_letter_headers
from agent_events.consumers.intake import Skip, admit
from agent_events.consumers.windows.aggregations import KeyFunction, event_time_ms
from agent_events.consumers.windows.codec import AggregateEncoder, WindowAggregate
from agent_events.consumers.windows.config import WindowedAggregationConfig
from agent_events.consumers.windows.engine import WindowEngine, WindowResult
from agent_events.consumers.windows.state import SourceMark
from agent_events.consumers.windows.trigger import ThresholdAlert
from agent_events.consumers.windows.watermarks import (
    WATERMARK_HEADER,
    effective_watermark,
    is_control,
)
from agent_events.producers.headers import (
    CONTENT_TYPE_HEADER,
    EVENT_TYPE_HEADER,
    Headers,
    header_value,
)
from agent_events.schemas.codec import CONTENT_TYPE, EventCodec
from agent_events.transport import DEFAULT_MAX_MESSAGE_BYTES

__all__ = [
    "AHEAD_OF_CLOCK",
    "BEHIND_WATERMARK",
    "CREATE_TIME",
    "LATE_HEADER_PREFIX",
    "AggregateTask",
    "Outgoing",
    "PartitionTask",
    "TaskCounters",
]

LATE_HEADER_PREFIX = "__agent_events.late"
"""Headers added to a late event on the side topic: ``.reason``, ``.watermark``, ``.window``."""

BEHIND_WATERMARK = "behind-watermark"
"""``.reason`` of an event older than every window still open."""

AHEAD_OF_CLOCK = "ahead-of-clock"
"""``.reason`` of an event stamped beyond ``max_event_skew_s`` (it did not move the watermark)."""

CREATE_TIME = 0
"""A record's ``timestamp_type`` when its producer set its time (``CreateTime``)."""
LOG_APPEND_TIME = 1
"""A record's ``timestamp_type`` when the broker set its time (``LogAppendTime``)."""

logger = logging.getLogger(__name__)

_HANDLER_NAME = "window-aggregation"


class Outgoing(NamedTuple):
    """One record to write in the next commit (``partition`` None: by key, murmur2)."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: Headers
    timestamp_ms: int | None = None
    partition: int | None = None


@dataclass(slots=True)
class TaskCounters:
    """What a task did since it was created (folded into the processor's metrics)."""

    processed: int = 0
    """Events added to windows or found late (each event once, whatever the stages)."""
    forwarded: int = 0
    """Events re-keyed to the repartition topic."""
    late: int = 0
    dead_lettered: int = 0
    windows_emitted: int = 0
    updates_emitted: int = 0
    alerts: int = 0
    skipped_below_offset: int = 0
    skipped_redrives: int = 0
    """Records re-driven for another consumer group (that group's work, not ours)."""


class PartitionTask:
    """Base of the two task kinds: offsets, outgoing records, dead letters."""

    def __init__(
        self,
        tp: TopicPartition,
        next_offset: int,
        config: WindowedAggregationConfig,
        event_codec: EventCodec,
        key_of: KeyFunction,
    ) -> None:
        self.tp = tp
        self.next_offset = next_offset
        self.committed_offset = next_offset
        self.outgoing: list[Outgoing] = []
        self.counters = TaskCounters()
        self.copies = CopySizes(DEFAULT_MAX_MESSAGE_BYTES, {})
        """Size limits of the DLQ and late topics (set by the processor from the broker's)."""
        self._config = config
        self._codec = event_codec
        self._key_of = key_of
        self._max_skew_ms = int(config.max_event_skew_s * 1000)

    @property
    def has_work(self) -> bool:
        """Whether a commit has anything to write for this partition."""
        return self.next_offset != self.committed_offset or bool(self.outgoing)

    def process(self, records: Sequence[Any]) -> None:
        """Handle fetched records of this partition, in offset order."""
        for record in records:
            if record.offset < self.next_offset:
                self.counters.skipped_below_offset += 1
                continue
            self.next_offset = record.offset + 1
            if is_control(record.headers):
                self._control(record)
                continue
            if self._take_undecoded(record):
                continue
            admitted = admit(
                record, self._codec, group_id=self._config.group_id, handler=_HANDLER_NAME
            )
            if isinstance(admitted, Skip):
                self.counters.skipped_redrives += 1
            elif isinstance(admitted, DeadLetter):
                self._dead_letter(admitted)
            elif self._ahead_of_clock(record, admitted):
                self._late(record, None, reason=AHEAD_OF_CLOCK)
            else:
                self._handle(record, admitted)

    def _ahead_of_clock(self, record: Any, event: SystemEvent) -> bool:
        """Whether ``event`` is stamped further ahead than ``max_event_skew_s`` allows."""
        return self._ahead_of_clock_ms(record, event_time_ms(event))

    def _ahead_of_clock_ms(self, record: Any, event_ms: int) -> bool:
        """Whether event time ``event_ms`` is further ahead than ``max_event_skew_s`` allows.

        The reference is the record's log-append time when the broker set it, else this
        member's clock (the producer's create time is the event's own stamp). One such
        event must not move the watermark: it would make every later event late, also
        after a restart, since the watermark is state.
        """
        if record.timestamp_type == LOG_APPEND_TIME:
            reference_ms = record.timestamp
        else:
            reference_ms = int(time.time() * 1000)
        return bool(event_ms > reference_ms + self._max_skew_ms)

    def _take_undecoded(self, record: Any) -> bool:
        """Handle ``record`` from its headers alone, if this task can; False: decode it."""
        return False

    def changelog(self) -> list[tuple[bytes, bytes | None]]:
        """State changes to write with the next commit (none for stateless tasks)."""
        return []

    def take_alerts(self) -> list[SystemEvent]:
        """Alert events to publish on the bus with the next commit."""
        return []

    def collect(self) -> None:
        """Move finished results into :attr:`outgoing` (just before a commit)."""

    def committed(self) -> None:
        """The commit of everything taken so far succeeded."""
        self.outgoing.clear()
        self.committed_offset = self.next_offset

    def _handle(self, record: Any, event: SystemEvent) -> None:
        raise NotImplementedError

    def _control(self, record: Any) -> None:
        """A control record reached a task that has no use for it: skip it."""

    def _late(self, record: Any, watermark: int | None, *, reason: str = BEHIND_WATERMARK) -> None:
        """Count an event too late for every window (or stamped too far ahead); copy it to
        the side topic if set, saying which (``.reason``)."""
        self.counters.late += 1
        late_topic = self._config.late_topic
        if late_topic is not None:
            headers = [(k, v) for k, v in record.headers or () if k != WATERMARK_HEADER]
            headers.append((f"{LATE_HEADER_PREFIX}.reason", reason.encode()))
            headers.append((f"{LATE_HEADER_PREFIX}.watermark", str(watermark).encode()))
            headers.append((f"{LATE_HEADER_PREFIX}.window", str(self._config.definition).encode()))
            self._copy(late_topic, record.key, record.value, headers, prefix=LATE_HEADER_PREFIX)

    def _copy(
        self, topic: str, key: bytes | None, value: bytes | None, headers: Headers, *, prefix: str
    ) -> None:
        """Queue a copy of a source record; over ``topic``'s limit, without its value.

        Inside a transaction a record the broker refuses aborts the whole commit, again
        after every restore: so the size is checked here, before anything is sent.
        """
        if not self.copies.fits(topic, key, value, headers):
            logger.warning(
                "%s[%d]: a %d-byte record is too large to copy to %s; copied without its value",
                self.tp.topic,
                self.tp.partition,
                len(value or b""),
                topic,
            )
            value, headers = None, without_value(headers, value, prefix=prefix)
        self.outgoing.append(Outgoing(topic, key, value, headers))

    def _dead_letter(self, letter: DeadLetter) -> None:
        """Write ``letter`` with the next commit (in its transaction, when there is one)."""
        self.counters.dead_lettered += 1
        topic = self._config.dlq_topic
        if topic is None:
            logger.error(
                "record %s[%d]@%d failed at %s (%s) and no DLQ is configured: skipped",
                letter.topic,
                letter.partition,
                letter.offset,
                letter.stage,
                letter.error,
            )
            return
        headers = dead_letter_headers(letter)
        self._copy(topic, letter.key, letter.value, headers, prefix=ERROR_HEADER_PREFIX)


class AggregateTask(PartitionTask):
    """Feeds a partition's events to its :class:`WindowEngine` and emits the results."""

    def __init__(
        self,
        tp: TopicPartition,
        next_offset: int,
        config: WindowedAggregationConfig,
        event_codec: EventCodec,
        key_of: KeyFunction,
        engine: WindowEngine,
        output_codec: AggregateEncoder,
        *,
        sources: frozenset[str] | None = None,
    ) -> None:
        super().__init__(tp, next_offset, config, event_codec, key_of)
        self.engine = engine
        self.sources = sources
        self._output_codec = output_codec
        self._output_headers: Headers = [(CONTENT_TYPE_HEADER, output_codec.content_type.encode())]
        self._window_text = str(config.definition)
        self._alerts: list[ThresholdAlert] = []

    def _handle(self, record: Any, event: SystemEvent) -> None:
        self.counters.processed += 1
        upstream: int | None = None
        if self.sources is not None:
            mark = header_value(record.headers, WATERMARK_HEADER)
            if mark:
                text, _, source = mark.decode().partition(" ")
                upstream = int(text)
                self._observe(source, upstream, idle=False)
        if not self.engine.add(event, upstream_watermark=upstream):
            wm = self.engine.watermark
            self._late(
                record, wm if upstream is None or (wm is not None and wm > upstream) else upstream
            )

    def _control(self, record: Any) -> None:
        if self.sources is None:
            return
        try:
            report = json.loads(record.value)
            name, watermark, idle = report["source"], report["watermark"], bool(report["idle"])
        except (ValueError, KeyError, TypeError):
            return  # not ours; never let a stray record stop the partition
        self._observe(name, watermark, idle=idle)

    def _observe(self, source: str, watermark: int | None, *, idle: bool) -> None:
        """Record what an input partition reported (a report, or a forwarded event)."""
        assert self.sources is not None
        marks = self.engine.store.sources
        before = marks.get(source)
        if (
            before is not None
            and before.watermark is not None
            and (watermark is None or watermark < before.watermark)
        ):
            watermark = before.watermark
        mark = SourceMark(watermark, idle)
        if mark == before:
            return
        marks[source] = mark
        effective = effective_watermark(marks, self.sources)
        if effective is not None:
            self.engine.advance(effective)

    def collect(self) -> None:
        engine = self.engine
        closed = engine.take_closed()
        self.counters.windows_emitted += len(closed)
        for result in closed:
            self._emit(result)
        if engine.emit_on_update:
            updates = engine.take_updates()
            self.counters.updates_emitted += len(updates)
            for result in updates:
                self._emit(result)
        alerts = engine.take_alerts()
        self.counters.alerts += len(alerts)
        self._alerts.extend(alerts)
        alerts_topic = self._config.alerts_output
        if alerts_topic is not None:
            for alert in alerts:
                event = alert.to_event(self._config.group_id)
                self.outgoing.append(
                    Outgoing(
                        alerts_topic,
                        event.partition_key.encode(),
                        self._codec.encode(event),
                        [
                            (EVENT_TYPE_HEADER, b"custom"),
                            (CONTENT_TYPE_HEADER, CONTENT_TYPE.encode()),
                        ],
                    )
                )

    def take_alerts(self) -> list[SystemEvent]:
        alerts, self._alerts = self._alerts, []
        return [alert.to_event(self._config.group_id) for alert in alerts]

    def changelog(self) -> list[tuple[bytes, bytes | None]]:
        return self.engine.store.changelog_records(self.next_offset)

    def _emit(self, result: WindowResult) -> None:
        fields = self._config.key_fields
        aggregate = WindowAggregate(
            source=self._config.group_id,
            key=result.key,
            key_fields=dict(zip(fields, json.loads(result.key), strict=True)),
            window=self._window_text,
            start_ms=result.start_ms,
            end_ms=result.end_ms,
            final=result.final,
            values=result.values,
        )
        self.outgoing.append(
            Outgoing(
                self._config.output_topic,
                result.key.encode(),
                self._output_codec.encode(aggregate),
                self._output_headers,
            )
        )
