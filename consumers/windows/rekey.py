"""Re-keying an input partition into the repartition topic, with its watermark.

See :mod:`consumers.windows.watermarks` for how the aggregating side uses what this
task sends, and ``docs/WINDOWS.md`` ("Keys and the repartition topic") for why.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from typing import Any

from aiokafka.structs import TopicPartition

from agent_events.agent_runtime.events import SystemEvent
from agent_events.consumers.dlq import REDRIVE_HEADER_PREFIX
from agent_events.consumers.windows.aggregations import (
    DEFAULT_KEY_FIELDS,
    KeyFunction,
    default_window_key,
    event_time_ms,
)
from agent_events.consumers.windows.config import WindowedAggregationConfig
from agent_events.consumers.windows.state import SourceMark, source_record
from agent_events.consumers.windows.tasks import (
    AHEAD_OF_CLOCK,
    CREATE_TIME,
    Outgoing,
    PartitionTask,
)
from agent_events.consumers.windows.watermarks import (
    CONTROL_HEADER,
    WATERMARK_CONTROL,
    WATERMARK_HEADER,
)
from agent_events.producers.headers import (
    AGENT_ID_HEADER,
    EVENT_TYPE_HEADER,
    PRODUCER_ID_HEADER,
    Headers,
)
from agent_events.producers.partitioner import partition_for_key
from agent_events.schemas.codec import EventCodec

__all__ = ["RekeyTask"]

_CONTROL_HEADERS: Headers = [(CONTROL_HEADER, WATERMARK_CONTROL)]
_ROUTES_KEPT = 65_536
_JSON = json.JSONEncoder(separators=(",", ":"))


class RekeyTask(PartitionTask):
    """Sends each event of an input partition to the repartition topic, keyed by window key.

    The input partition's watermark lives here: an event too late for every window by
    it is counted (and side-topic'd) here, and every forwarded event carries it in
    ``WATERMARK_HEADER``, so lateness follows the order of the input partition
    whatever the interleaving downstream. The watermark and next offset go to the
    changelog with each commit (a restart resumes them), and a report goes to every
    repartition partition whenever it changed, after the events it covers (same
    producer, same partition: in order). The task reports itself idle once it has
    read up to the partition's end and received no record for ``idle_source_after_s``,
    so an empty or quiet input partition does not hold every window open.
    """

    def __init__(
        self,
        tp: TopicPartition,
        next_offset: int,
        config: WindowedAggregationConfig,
        event_codec: EventCodec,
        key_of: KeyFunction,
        *,
        targets: int,
        watermark: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(tp, next_offset, config, event_codec, key_of)
        self.source = f"{tp.topic}:{tp.partition}"
        self.watermark = watermark
        self._is_late = config.definition.is_late
        self._targets = targets
        self._clock = clock
        self._last_record_at = clock()
        self.caught_up = True
        """Set by the processor: whether the consumer has read up to the partition's end."""
        self._reported: SourceMark | None = None
        self._reporting: SourceMark | None = None
        self._routes: dict[str, tuple[bytes, int]] = {}
        """Window key -> (key bytes, repartition partition): few keys, many events."""
        self._header_routes: dict[tuple[bytes, bytes], tuple[bytes, int]] = {}
        """(type header, agent header) -> the same, for records routed undecoded."""
        self._keys_in_headers = tuple(config.key_fields) == DEFAULT_KEY_FIELDS

    def process(self, records: Sequence[Any]) -> None:
        if records:
            self._last_record_at = self._clock()
        super().process(records)

    def _take_undecoded(self, record: Any) -> bool:
        """Forward a record our producer wrote without decoding it.

        Its ``event_type`` and ``agent_events.agent_id`` headers give the default window
        key, and its create time is the event's timestamp in milliseconds (the producer
        stamps it so), which is all re-keying needs. Anything else (another key, other
        producers, re-drives, log-append time, no value) is decoded as usual; a value that
        cannot be decoded is then dead-lettered by the aggregating stage.
        """
        if not self._keys_in_headers or record.value is None:
            return False
        if record.timestamp_type != CREATE_TIME:
            return False
        pair = _type_and_agent(record.headers)
        if pair is None:
            return False
        route = self._header_routes.get(pair)
        if route is None:
            try:
                key = default_window_key(pair[0].decode(), pair[1].decode())
            except UnicodeDecodeError:
                return False
            if len(self._header_routes) >= _ROUTES_KEPT:
                self._header_routes.clear()
            route = self._header_routes[pair] = self._route(key)
        ts = record.timestamp
        if self._ahead_of_clock_ms(record, ts):
            self._late(record, None, reason=AHEAD_OF_CLOCK)
        else:
            self._forward(record, ts, route)
        return True

    def _handle(self, record: Any, event: SystemEvent) -> None:
        self._forward(record, event_time_ms(event), self._route(self._key_of(event)))

    def _forward(self, record: Any, ts: int, route: tuple[bytes, int]) -> None:
        """Send ``record`` (event time ``ts``) to its repartition partition, or count it late."""
        wm = self.watermark
        if wm is None or ts > wm:
            wm = self.watermark = ts
        elif self._is_late(ts, wm):
            self.counters.processed += 1  # it ends here: it never reaches a window
            self._late(record, wm)
            return
        self.counters.forwarded += 1
        headers = [(k, v) for k, v in record.headers or () if k != WATERMARK_HEADER]
        headers.append((WATERMARK_HEADER, f"{wm} {self.source}".encode()))
        key, partition = route
        self.outgoing.append(
            Outgoing(
                self._config.repartition_topic,
                key,
                record.value,
                headers,
                record.timestamp,
                partition,
            )
        )

    def _route(self, key: str) -> tuple[bytes, int]:
        """The key's bytes and its repartition partition (the Java client's murmur2 rule)."""
        route = self._routes.get(key)
        if route is None:
            if len(self._routes) >= _ROUTES_KEPT:
                self._routes.clear()
            data = key.encode()
            route = self._routes[key] = (data, partition_for_key(data, self._targets))
        return route

    def changelog(self) -> list[tuple[bytes, bytes | None]]:
        return [source_record(self.source, self.watermark, self.next_offset)]

    def collect(self) -> None:
        idle = (
            self.caught_up
            and self._clock() - self._last_record_at >= self._config.idle_source_after_s
        )
        mark = SourceMark(self.watermark, idle)
        if mark == self._reported:
            return
        self._reporting = mark
        report = _JSON.encode({"source": self.source, "watermark": mark.watermark, "idle": idle})
        topic = self._config.repartition_topic
        for partition in range(self._targets):
            self.outgoing.append(
                Outgoing(topic, None, report.encode(), _CONTROL_HEADERS, partition=partition)
            )

    def committed(self) -> None:
        super().committed()
        if self._reporting is not None:
            self._reported, self._reporting = self._reporting, None


def _type_and_agent(headers: Sequence[tuple[str, bytes]] | None) -> tuple[bytes, bytes] | None:
    """The type and agent headers of a record our producer wrote; ``None`` for any other
    record, and for a re-drive (intake decides whose it is)."""
    label = agent = None
    ours = False
    for name, value in headers or ():
        if name == EVENT_TYPE_HEADER:
            label = value
        elif name == AGENT_ID_HEADER:
            agent = value
        elif name == PRODUCER_ID_HEADER:
            ours = True
        elif name.startswith(REDRIVE_HEADER_PREFIX):
            return None
    if label is None or agent is None or not ours:
        return None
    return label, agent
