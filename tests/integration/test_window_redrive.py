"""Windows honour the re-drive address: a re-drive meant for another group is not theirs.

The user's path: another group dead-lettered some records, an operator re-drives them
with ``redrive()`` (what ``agent-events dlq redrive`` runs), and they land on the source
topic again, addressed to that group. The window processor counted them the first time;
it must neither count them again nor dead-letter an undecodable one a second time.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest
from aiokafka import AIOKafkaProducer
from kafka_support import produce
from window_helpers import (
    as_windows,
    guarantee,
    read_aggregates,
    read_records,
    running,
    stream,
    tumbling_oracle,
    wait_until,
)

from agent_events.agent_runtime.events import SystemEvent
from agent_events.broker.capabilities import BrokerCapabilities
from agent_events.broker.pytest_fixtures import NewTopic, RunningBroker
from agent_events.consumers.dlq import DeadLetter, Stage, dead_letter_headers
from agent_events.consumers.redrive import redrive
from agent_events.producers.config import KafkaConnectionConfig
from agent_events.schemas.codec import EventCodec

pytestmark = pytest.mark.timeout(120)

OTHER_GROUP = "notifications"


async def dead_letter_then_redrive(
    bootstrap: str,
    source: str,
    dlq: str,
    values: list[tuple[bytes, bytes]],
    *,
    stage: Stage = "handle",
) -> None:
    """Write ``(key, value)`` records to ``dlq`` as ``OTHER_GROUP``'s failures; re-drive them."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for offset, (key, value) in enumerate(values):
            letter = DeadLetter(
                topic=source,
                partition=0,
                offset=offset,
                key=key,
                value=value,
                headers=[],
                stage=stage,
                error=RuntimeError(f"{OTHER_GROUP} failed at {stage}"),
                consumer_group=OTHER_GROUP,
                handler="notify",
            )
            await producer.send_and_wait(dlq, value, key=key, headers=dead_letter_headers(letter))
    finally:
        await producer.stop()
    report = await redrive(KafkaConnectionConfig(bootstrap_servers=bootstrap), dlq)
    assert report.sent == len(values), report


def minute_windows(
    broker: RunningBroker, caps: BrokerCapabilities, topic: str, **extra: Any
) -> dict[str, Any]:
    """Settings of a tumbling 60 s / grace 5 s processor over ``topic``, with its own topics."""
    return {
        "bootstrap_servers": broker.bootstrap_servers,
        "topics": [topic],
        "group_id": f"{topic}-windows",
        "output_topic": f"{topic}.aggregates",
        "dlq_topic": f"{topic}.windows-dlq",
        "window": "tumbling:60s",
        "grace": "5s",
        "processing_guarantee": guarantee(caps),
        **extra,
    }


def open_window_events(events: list[SystemEvent], count: int) -> list[tuple[bytes, bytes]]:
    """Encoded copies of the last ``count`` events (their window is still open)."""
    codec = EventCodec()
    return [(e.partition_key.encode(), codec.encode(e)) for e in events[-count:]]


async def test_windows_do_not_count_records_redriven_for_another_group(
    broker: RunningBroker, broker_capabilities: BrokerCapabilities, new_topic: NewTopic
) -> None:
    topic = await new_topic(partitions=1)
    dlq = await new_topic(partitions=1)
    events = stream(1_200, step_ms=250)  # 5 minutes of event time
    first, second = events[:500], events[500:]  # the cut is inside minute 2 (open)
    expected = tumbling_oracle(events, 60_000, 5_000)
    await produce(broker.bootstrap_servers, topic, first)
    await dead_letter_then_redrive(
        broker.bootstrap_servers, topic, dlq, open_window_events(first, 40)
    )
    await produce(broker.bootstrap_servers, topic, second)
    async with running(**minute_windows(broker, broker_capabilities, topic)) as processor:
        rows = await read_aggregates(
            broker.bootstrap_servers,
            f"{topic}.aggregates",
            until=lambda rows: len(rows) >= len(expected),
        )
        assert processor.metrics_snapshot().redrives_skipped == 40
    assert as_windows(rows) == expected, "a re-drive for another group changed a window"


async def test_an_undecodable_record_redriven_for_another_group_is_not_dead_lettered_again(
    broker: RunningBroker, broker_capabilities: BrokerCapabilities, new_topic: NewTopic
) -> None:
    topic = await new_topic(partitions=1)
    dlq = await new_topic(partitions=1)
    events = stream(400, step_ms=250)
    await dead_letter_then_redrive(
        broker.bootstrap_servers,
        topic,
        dlq,
        [(b"session-0", b"\x00not an event at all")],
        stage="decode",
    )
    await produce(broker.bootstrap_servers, topic, events)
    expected = tumbling_oracle(events, 60_000, 5_000)
    async with running(**minute_windows(broker, broker_capabilities, topic)) as processor:
        await read_aggregates(
            broker.bootstrap_servers,
            f"{topic}.aggregates",
            until=lambda rows: len(rows) >= len(expected),
        )
        await wait_until(
            lambda: processor.metrics_snapshot().events == len(events), 30, "every event counted"
        )
        assert processor.metrics_snapshot().dead_lettered == 0, (
            "the aggregate group dead-lettered another group's re-drive"
        )


async def test_one_event_stamped_far_ahead_goes_to_the_late_topic_and_moves_no_watermark(
    broker: RunningBroker, broker_capabilities: BrokerCapabilities, new_topic: NewTopic
) -> None:
    """Kafka accepts a record stamped up to an hour ahead; one must not make the rest late."""
    topic = await new_topic(partitions=1)
    events = stream(400, step_ms=250)
    skewed = events[100].model_copy(
        update={"event_id": uuid4(), "timestamp": datetime.now(UTC) + timedelta(minutes=50)}
    )
    await produce(broker.bootstrap_servers, topic, [*events[:101], skewed, *events[101:]])
    expected = tumbling_oracle(events, 60_000, 5_000)
    async with running(
        **minute_windows(broker, broker_capabilities, topic, late_topic=f"{topic}.late")
    ) as processor:
        rows = await read_aggregates(
            broker.bootstrap_servers,
            f"{topic}.aggregates",
            until=lambda rows: len(rows) >= len(expected),
        )
        assert processor.metrics_snapshot().late_events == 1
    assert as_windows(rows) == expected, "the skewed event moved the watermark"
    (late,) = await read_records(broker.bootstrap_servers, f"{topic}.late", 1)
    assert dict(late.headers)["__agent_events.late.reason"] == b"ahead-of-clock"  # type: ignore[attr-defined]
    assert EventCodec().decode(late.value).event_id == skewed.event_id  # type: ignore[attr-defined]
