"""The window processor on a real broker: output, late events, alerts, flat state, guarantees.

Each test runs on Apache Kafka (exactly once, in transactions) and on Tansu (at least
once, since Tansu has no transactions), except where exactly-once itself is asserted.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from kafka_support import produce
from window_helpers import (
    START,
    as_windows,
    guarantee,
    ms,
    read_aggregates,
    read_records,
    running,
    stream,
    tumbling_oracle,
    wait_until,
)

from agent_events.agent_runtime.errors import UnsupportedByBroker
from agent_events.agent_runtime.event_bus import EventBus
from agent_events.agent_runtime.events import EventType, SystemEvent
from agent_events.broker.capabilities import BrokerCapabilities
from agent_events.broker.pytest_fixtures import NewTopic, RunningBroker
from agent_events.consumers.dlq import error_headers_of
from agent_events.consumers.handlers.aggregator import ALERT_KIND
from agent_events.consumers.windows import HoppingWindow, WindowProcessor
from agent_events.consumers.windows.tasks import LATE_HEADER_PREFIX

pytestmark = pytest.mark.timeout(120)


async def test_closed_windows_match_the_oracle_once_each(
    broker: RunningBroker, broker_capabilities: BrokerCapabilities, new_topic: NewTopic
) -> None:
    topic = await new_topic(partitions=3)
    events = stream(1_200, step_ms=250)  # 5 minutes of event time over 3 partitions
    expected = tumbling_oracle(events, 60_000, 5_000)
    await produce(broker.bootstrap_servers, topic, events)
    async with running(
        bootstrap_servers=broker.bootstrap_servers,
        topics=[topic],
        group_id=f"{topic}-g",
        output_topic=f"{topic}.aggregates",
        window="tumbling:60s",
        grace="5s",
        processing_guarantee=guarantee(broker_capabilities),
    ) as processor:
        rows = await read_aggregates(
            broker.bootstrap_servers,
            f"{topic}.aggregates",
            until=lambda rows: len(rows) >= len(expected),
        )
        assert processor.metrics_snapshot().late_events == 0
    assert as_windows(rows) == expected


async def test_no_record_is_fetched_before_its_partition_is_restored(
    broker: RunningBroker, broker_capabilities: BrokerCapabilities, new_topic: NewTopic
) -> None:
    """aiokafka fetches a partition as soon as it is assigned, while the processor still
    restores its state; those records had no task, were dropped and fetched again (every
    record read twice at each rebalance). The partitions now wait until they are ready."""
    topic = await new_topic(partitions=2)
    events = stream(4_000, step_ms=250)
    await produce(broker.bootstrap_servers, topic, events)
    processor = WindowProcessor(
        bootstrap_servers=broker.bootstrap_servers,
        topics=[topic],
        group_id=f"{topic}-g",
        output_topic=f"{topic}.aggregates",
        window="tumbling:60s",
        grace="5s",
        processing_guarantee=guarantee(broker_capabilities),
    )
    unready = 0
    take = processor._take

    async def counting_take(consumer: Any, batch: dict[Any, list[Any]]) -> None:
        nonlocal unready
        unready += sum(len(r) for tp, r in batch.items() if tp not in processor.assignment)
        await take(consumer, batch)

    processor._take = counting_take  # type: ignore[method-assign]
    async with processor:
        runner = asyncio.create_task(processor.run())
        await wait_until(
            lambda: processor.metrics_snapshot().events >= len(events), 60, "every event"
        )
        processor.request_stop()
        await asyncio.wait_for(runner, 60)
    assert unready == 0, f"{unready} records were fetched before their partition was ready"


async def test_an_event_late_beyond_grace_is_counted_and_sent_to_the_side_topic(
    broker: RunningBroker, broker_capabilities: BrokerCapabilities, new_topic: NewTopic
) -> None:
    topic = await new_topic(partitions=1)
    on_time = stream(200, step_ms=1_000)
    late = SystemEvent(
        event_type=EventType.AGENT_COMPLETED,
        agent_id="agent-0",
        session_id="session-0",
        timestamp=START + timedelta(seconds=5),  # its window closed long before it arrives
    )
    expected = tumbling_oracle(on_time, 60_000, 10_000)
    await produce(broker.bootstrap_servers, topic, [*on_time, late])
    async with running(
        bootstrap_servers=broker.bootstrap_servers,
        topics=[topic],
        group_id=f"{topic}-g",
        output_topic=f"{topic}.aggregates",
        late_topic=f"{topic}.late",
        window="tumbling:60s",
        grace="10s",
        processing_guarantee=guarantee(broker_capabilities),
    ) as processor:
        rows = await read_aggregates(
            broker.bootstrap_servers,
            f"{topic}.aggregates",
            until=lambda rows: len(rows) >= len(expected),
        )
        await wait_until(lambda: processor.metrics_snapshot().late_events == 1, 30, "late count")
    assert as_windows(rows) == expected, "the late event changed no window"
    [record] = await read_records(broker.bootstrap_servers, f"{topic}.late", 1)
    headers = dict(record.headers)  # type: ignore[attr-defined]
    assert headers[f"{LATE_HEADER_PREFIX}.window"] == b"tumbling:1m"
    assert int(headers[f"{LATE_HEADER_PREFIX}.watermark"]) >= ms(late) + 70_000


async def test_ten_events_of_a_type_for_an_agent_within_60s_publish_one_alert_on_the_bus(
    broker: RunningBroker, broker_capabilities: BrokerCapabilities, new_topic: NewTopic
) -> None:
    topic = await new_topic(partitions=2)
    burst = [  # 12 failures of agent-7 within 33 s, then quiet; other agents stay below
        SystemEvent(
            event_type=EventType.ERROR_OCCURRED,
            agent_id="agent-7" if i % 2 == 0 else f"agent-{i}",
            session_id=f"s{i % 5}",
            timestamp=START + timedelta(seconds=i * 1.5),
        )
        for i in range(24)
    ]
    bus = EventBus()
    alerts: list[SystemEvent] = []

    async def on_alert(event: SystemEvent) -> None:
        alerts.append(event)

    await bus.subscribe(EventType.CUSTOM, on_alert)
    await produce(broker.bootstrap_servers, topic, burst)
    async with running(
        bootstrap_servers=broker.bootstrap_servers,
        topics=[topic],
        group_id=f"{topic}-g",
        output_topic=f"{topic}.aggregates",
        window="sliding:60s",
        alert_threshold=10,
        alert_bus=bus,
        processing_guarantee=guarantee(broker_capabilities),
    ) as processor:
        await wait_until(
            lambda: processor.metrics_snapshot().events == len(burst), 60, "all events"
        )
        await wait_until(lambda: bool(alerts), 30, "the alert")
        await bus.join()
    await bus.stop()
    [alert] = alerts
    assert alert.agent_id == "agent-7"
    assert alert.metadata["kind"] == ALERT_KIND
    assert alert.metadata["count"] == 10
    assert alert.metadata["source_event_type"] == "error_occurred"


async def test_state_stays_flat_over_a_long_run_because_closed_windows_are_purged(
    broker: RunningBroker, broker_capabilities: BrokerCapabilities, new_topic: NewTopic
) -> None:
    topic = await new_topic(partitions=2)
    rounds, per_round = 8, 600  # each round: 5 more minutes of event time, 15 more hops
    events = stream(rounds * per_round, step_ms=500)
    keys = len({(e.event_type, e.agent_id) for e in events})
    hopping = HoppingWindow(60_000, 20_000)
    held_after_round: list[int] = []
    async with running(
        bootstrap_servers=broker.bootstrap_servers,
        topics=[topic],
        group_id=f"{topic}-g",
        output_topic=f"{topic}.aggregates",
        window=str(hopping),
        processing_guarantee=guarantee(broker_capabilities),
    ) as processor:
        for n in range(1, rounds + 1):
            sent = events[: n * per_round]
            await produce(broker.bootstrap_servers, topic, sent[-per_round:])
            last = ms(sent[-1])
            windows = {
                (e.event_type, e.agent_id, w) for e in sent for w in hopping.windows_for(ms(e))
            }
            closable = sum(1 for *_, (_, end) in windows if end <= last)
            await wait_until(
                lambda: processor.metrics_snapshot().windows_emitted >= closable,  # noqa: B023
                60,
                f"round {n}: {closable} windows closed",
            )
            snapshot = processor.metrics_snapshot()
            assert snapshot.windows_emitted == closable
            held_after_round.append(snapshot.state_entries)
    # Emitted windows grow with the run; what is held stays the last windows of each key.
    assert held_after_round == [3 * keys] * rounds


@pytest.mark.broker_kinds("tansu")
async def test_exactly_once_on_a_broker_without_transactions_refuses_at_start(
    broker: RunningBroker, new_topic: NewTopic
) -> None:
    topic = await new_topic(partitions=1)
    processor = WindowProcessor(
        bootstrap_servers=broker.bootstrap_servers,
        topics=[topic],
        group_id=f"{topic}-g",
        window="tumbling:60s",
        processing_guarantee="exactly_once",
        connect_timeout_s=5,
    )
    with pytest.raises(UnsupportedByBroker, match="at_least_once"):
        await processor.start()


@dataclass
class BadRecordRun:
    """What :func:`windows_around_bad_records` saw: the windows, DLQ and late records."""

    rows: list[Any]
    letters: list[Any]
    lates: list[Any]
    dead_lettered: int
    late_events: int


async def windows_around_bad_records(
    broker: RunningBroker,
    caps: BrokerCapabilities,
    topic: str,
    bad: list[bytes | None],
    *,
    late: Sequence[SystemEvent] = (),
) -> BadRecordRun:
    """300 good events, the ``bad`` values, 500 more (then ``late``), through a processor
    with a DLQ and a late topic: the windows must be the oracle's, and every bad record
    and late event accounted for."""
    events = stream(800, step_ms=250)
    expected = tumbling_oracle(events, 60_000, 5_000)
    await produce(broker.bootstrap_servers, topic, events[:300])
    producer = AIOKafkaProducer(
        bootstrap_servers=broker.bootstrap_servers, acks="all", max_request_size=2 * 1024 * 1024
    )
    await producer.start()
    try:
        for value in bad:
            await producer.send_and_wait(topic, value, key=b"session-0")
    finally:
        await producer.stop()
    await produce(broker.bootstrap_servers, topic, [*events[300:], *late])
    async with running(
        bootstrap_servers=broker.bootstrap_servers,
        topics=[topic],
        group_id=f"{topic}-g",
        output_topic=f"{topic}.aggregates",
        dlq_topic=f"{topic}.dlq",
        late_topic=f"{topic}.late",
        window="tumbling:60s",
        grace="5s",
        processing_guarantee=guarantee(caps),
    ) as processor:
        rows = await read_aggregates(
            broker.bootstrap_servers,
            f"{topic}.aggregates",
            until=lambda rows: len(rows) >= len(expected),
        )
        letters = await read_records(broker.bootstrap_servers, f"{topic}.dlq", len(bad))
        lates = await read_records(broker.bootstrap_servers, f"{topic}.late", len(late))
        snapshot = processor.metrics_snapshot()
    assert as_windows(rows) == expected, "only the good events are counted"
    return BadRecordRun(rows, letters, lates, snapshot.dead_lettered, snapshot.late_events)


async def test_tombstone_empty_and_garbage_values_go_to_the_dlq_and_the_partition_moves_on(
    broker: RunningBroker, broker_capabilities: BrokerCapabilities, new_topic: NewTopic
) -> None:
    topic = await new_topic(partitions=1)
    bad_values = [None, b"", b"\x00\x01 garbage, not Avro"]
    run = await windows_around_bad_records(broker, broker_capabilities, topic, bad_values)
    assert run.dead_lettered == len(bad_values)
    assert [r.value for r in run.letters] == bad_values
    for letter in run.letters:
        errors = error_headers_of(letter.headers)
        assert (errors["stage"], errors["consumer.group"]) == ("decode", f"{topic}-g")


@pytest.mark.broker_kinds("kafka")
async def test_records_near_the_source_limit_are_copied_whole_to_the_dlq_and_late_topics(
    broker: RunningBroker, broker_capabilities: BrokerCapabilities, new_topic: NewTopic
) -> None:
    """Old: the copy (value + headers) was over the output producer's 1 MiB, the commit
    aborted and restored forever and the partition never moved on."""
    topic = await new_topic(partitions=1)
    garbage = b"\x00not Avro" + b"g" * 1_048_000  # the source takes it; plus headers, over 1 MiB
    late = stream(1)[0].model_copy(
        update={"event_id": str(uuid.uuid4()), "metadata": {"blob": "x" * 1_045_000}}
    )
    run = await windows_around_bad_records(
        broker, broker_capabilities, topic, [garbage], late=[late]
    )
    assert (run.dead_lettered, run.late_events) == (1, 1)
    assert run.letters[0].value == garbage
    assert str(late.event_id).encode() in run.lates[0].value


@pytest.mark.broker_kinds("kafka")
async def test_a_dead_letter_over_the_dlq_topics_limit_goes_without_its_value(
    broker: RunningBroker, broker_capabilities: BrokerCapabilities, new_topic: NewTopic
) -> None:
    topic = await new_topic(partitions=1)
    await new_topic(partitions=1, name=f"{topic}.dlq", configs={"max.message.bytes": "100000"})
    garbage = b"\x00not Avro" + b"g" * 200_000
    run = await windows_around_bad_records(broker, broker_capabilities, topic, [garbage])
    errors = error_headers_of(run.letters[0].headers)
    assert run.letters[0].value is None
    assert (errors["value.truncated"], errors["value.size"]) == ("true", str(len(garbage)))
    assert errors["value.sha256"] == hashlib.sha256(garbage).hexdigest()
    assert (errors["topic"], errors["offset"]) == (topic, "300")
