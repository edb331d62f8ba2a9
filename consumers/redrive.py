"""Reading the dead-letter topic and sending chosen records back where they came from.

A re-driven record goes to its source topic (the ``.topic`` error header) with
its original key, value and headers, so it lands on its session's partition
again, in DLQ order. It carries the name of the group that failed it: other
groups, which handled it the first time, skip it.
"""

from __future__ import annotations

import fnmatch
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaProducer

from agent_events.consumers.dlq import error_headers_of, redrive_headers
from agent_events.consumers.scan import scan_topic, standalone_consumer, topic_partitions
from agent_events.producers.config import KafkaConnectionConfig
from agent_events.producers.headers import EVENT_TYPE_HEADER, header_value
from agent_events.transport import backend_for, start_client

__all__ = ["DeadLetterFilter", "DeadLetterRecord", "RedriveReport", "read_dead_letters", "redrive"]


@dataclass(frozen=True, slots=True)
class DeadLetterRecord:
    """A record of the DLQ, with its error headers parsed."""

    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]
    errors: dict[str, str]

    @property
    def source_topic(self) -> str | None:
        return self.errors.get("topic")

    @property
    def event_type(self) -> str | None:
        raw = header_value(self.headers, EVENT_TYPE_HEADER)
        return raw.decode("utf-8", "replace") if raw is not None else None


@dataclass(frozen=True, slots=True)
class DeadLetterFilter:
    """Which dead letters to pick; every field left ``None`` matches everything.

    ``exception`` and ``handler`` are shell-style patterns (``*Timeout*``).
    """

    source_topic: str | None = None
    stage: str | None = None
    consumer_group: str | None = None
    handler: str | None = None
    exception: str | None = None
    event_type: str | None = None
    key: str | None = None

    def matches(self, letter: DeadLetterRecord) -> bool:
        e = letter.errors
        checks: list[tuple[str | None, str | None, Callable[[str, str], bool]]] = [
            (self.source_topic, e.get("topic"), str.__eq__),
            (self.stage, e.get("stage"), str.__eq__),
            (self.consumer_group, e.get("consumer.group"), str.__eq__),
            (self.handler, e.get("handler"), fnmatch.fnmatchcase),
            (self.exception, e.get("exception.class.name"), fnmatch.fnmatchcase),
            (self.event_type, letter.event_type, str.__eq__),
            (self.key, letter.key.decode("utf-8", "replace") if letter.key else None, str.__eq__),
        ]
        for wanted, actual, compare in checks:
            if wanted is not None and (actual is None or not compare(actual, wanted)):
                return False
        return True


@dataclass(slots=True)
class RedriveReport:
    """What a re-drive read and sent."""

    matched: int = 0
    sent: int = 0
    skipped_without_source: int = 0


async def read_dead_letters(
    connection: KafkaConnectionConfig,
    dlq_topic: str,
    selection: DeadLetterFilter | None = None,
    *,
    limit: int | None = None,
) -> AsyncIterator[DeadLetterRecord]:
    """The DLQ's records (up to its end at the start of the call) that match ``selection``."""
    selection = selection or DeadLetterFilter()
    yielded = 0
    async with standalone_consumer(connection) as consumer:
        tps = await topic_partitions(consumer, dlq_topic)
        async for record in scan_topic(consumer, tps):
            letter = _as_dead_letter(record)
            if selection.matches(letter):
                yield letter
                yielded += 1
                if limit is not None and yielded >= limit:
                    return


async def redrive(
    connection: KafkaConnectionConfig,
    dlq_topic: str,
    selection: DeadLetterFilter | None = None,
    *,
    dry_run: bool = False,
    limit: int | None = None,
) -> RedriveReport:
    """Send the matching dead letters back to their source topics; returns the counts.

    The DLQ itself is not changed (Kafka topics are append-only); re-driving the
    same records twice sends them twice.
    """
    report = RedriveReport()
    producer: AIOKafkaProducer | None = None
    if not dry_run:
        producer = backend_for(connection).producer(connection, {"acks": "all"})
        await start_client(producer, connection, what="re-drive producer")
    try:
        async for letter in read_dead_letters(connection, dlq_topic, selection, limit=limit):
            report.matched += 1
            source = letter.source_topic
            if source is None:
                report.skipped_without_source += 1
                continue
            if producer is not None:
                headers = redrive_headers(
                    letter.headers, for_group=letter.errors.get("consumer.group")
                )
                await producer.send(source, value=letter.value, key=letter.key, headers=headers)
                report.sent += 1
        if producer is not None:
            await producer.flush()
    finally:
        if producer is not None:
            await producer.stop()
    return report


def _as_dead_letter(record: Any) -> DeadLetterRecord:
    headers = list(record.headers or ())
    return DeadLetterRecord(
        partition=record.partition,
        offset=record.offset,
        timestamp_ms=record.timestamp,
        key=record.key,
        value=record.value,
        headers=headers,
        errors=error_headers_of(headers),
    )
