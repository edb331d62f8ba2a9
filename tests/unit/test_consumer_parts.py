"""The consumer runtime's parts, each alone: offsets, ordering, processing steps, headers."""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict

import pytest
from aiokafka.structs import ConsumerRecord, TopicPartition
from pydantic import ValidationError

from agent_events.agent_runtime.errors import HandlerTimeout, UnknownSchemaError
from agent_events.agent_runtime.event_bus import EventBus, EventType, SystemEvent
from agent_events.consumers.config import ConsumerConfig
from agent_events.consumers.dlq import (
    ERROR_HEADER_PREFIX,
    REDRIVE_FOR_GROUP_HEADER,
    DeadLetter,
    dead_letter_headers,
    error_headers_of,
    redrive_headers,
)
from agent_events.consumers.offsets import OffsetTracker
from agent_events.consumers.processing import RecordProcessor
from agent_events.consumers.worker import PartitionWorker
from agent_events.producers.config import ProducerConfig
from agent_events.producers.headers import SessionSequencer, header_value
from agent_events.producers.partitioner import SessionKeyPartitioner, partition_for_key
from agent_events.schemas.codec import encode_event

# --------------------------------------------------------------------------- offsets


def test_committable_offset_is_one_past_the_done_prefix() -> None:
    tracker = OffsetTracker()
    for offset in (10, 11, 12, 13):
        tracker.take(offset)
    tracker.finish(11)
    tracker.finish(13)
    assert tracker.committable() is None
    tracker.finish(10)
    assert tracker.committable() == 12
    tracker.committed(12)
    assert tracker.committable() is None
    tracker.finish(12)
    assert tracker.committable() == 14


def test_offset_gaps_from_compaction_do_not_block_commits() -> None:
    tracker = OffsetTracker()
    for offset in (3, 7, 20):
        tracker.take(offset)
    for offset in (20, 3, 7):
        tracker.finish(offset)
    assert tracker.committable() == 21
    assert tracker.in_flight == 0


def test_random_finish_order_never_commits_an_unfinished_offset() -> None:
    rng = random.Random(7)
    tracker = OffsetTracker()
    offsets = list(range(500))
    for offset in offsets:
        tracker.take(offset)
    finished: set[int] = set()
    for offset in rng.sample(offsets, len(offsets)):
        tracker.finish(offset)
        finished.add(offset)
        commit = tracker.committable()
        if commit is not None:
            assert all(o in finished for o in range(commit))
            tracker.committed(commit)
    assert tracker.committable() is None
    assert tracker.in_flight == 0


# ----------------------------------------------------------------------- partitioner

# Kafka's own test vectors (clients UtilsTest#testMurmur2), as signed Java ints.
JAVA_MURMUR2 = {
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    b"abc": 479470107,
}


@pytest.mark.parametrize(("key", "java_hash"), JAVA_MURMUR2.items())
def test_partition_matches_the_java_default_partitioner(key: bytes, java_hash: int) -> None:
    for partitions in (1, 3, 12, 100):
        expected = (java_hash & 0x7FFFFFFF) % partitions
        assert partition_for_key(key, partitions) == expected
        assert SessionKeyPartitioner()(key, list(range(partitions)), []) == expected


def test_partitioner_cache_stays_bounded_and_correct() -> None:
    partitioner = SessionKeyPartitioner(cache_size=4)
    for i in range(50):
        key = f"session-{i}".encode()
        assert partitioner(key, list(range(12)), []) == partition_for_key(key, 12)
    assert len(partitioner._cache) == 4


def test_session_sequence_counts_per_key_and_forgets_least_recent() -> None:
    sequencer = SessionSequencer(capacity=2)
    assert [sequencer.next("a"), sequencer.next("a"), sequencer.next("b")] == [1, 2, 1]
    assert sequencer.next("a") == 3
    sequencer.next("c")  # evicts b, the least recently used
    assert sequencer.next("b") == 1  # evicts a
    assert sequencer.next("c") == 2


# ------------------------------------------------------------------------- configs


def test_consumer_config_refuses_dlq_that_is_also_an_input() -> None:
    with pytest.raises(ValidationError, match="loop"):
        ConsumerConfig(group_id="g", topics=["agent.events", "agent.events.dlq"])


@pytest.mark.parametrize("servers", ["", "localhost", "host:notaport", "host:70000", ":9092"])
def test_bad_bootstrap_servers_are_refused(servers: str) -> None:
    with pytest.raises(ValidationError, match="bootstrap"):
        ConsumerConfig(group_id="g", bootstrap_servers=servers)


def test_idempotence_requires_acks_all() -> None:
    with pytest.raises(ValidationError, match="acks"):
        ProducerConfig(acks=1)
    assert ProducerConfig(acks=1, enable_idempotence=False).acks == 1


def test_consumer_config_never_auto_commits() -> None:
    kwargs = ConsumerConfig(group_id="g").consumer_kwargs()
    assert kwargs["enable_auto_commit"] is False
    assert kwargs["group_id"] == "g"


# ------------------------------------------------------------------------ headers


def letter(error: BaseException, headers: list[tuple[str, bytes]] | None = None) -> DeadLetter:
    return DeadLetter(
        topic="agent.events",
        partition=3,
        offset=42,
        key=b"sess-1",
        value=b"\x00",
        headers=headers or [("event_type", b"agent_started")],
        stage="handle",
        error=error,
        consumer_group="metrics",
        handler="Collector.collect",
        retry_count=3,
        first_failure_ms=1_700_000_000_000,
    )


def test_dead_letter_headers_keep_originals_and_add_connect_style_errors() -> None:
    try:
        raise ValueError("bad value")
    except ValueError as exc:
        headers = dead_letter_headers(letter(exc))
    assert header_value(headers, "event_type") == b"agent_started"
    errors = error_headers_of(headers)
    assert errors["topic"] == "agent.events"
    assert errors["partition"] == "3"
    assert errors["offset"] == "42"
    assert errors["exception.class.name"] == "builtins.ValueError"
    assert errors["exception.message"] == "bad value"
    assert "ValueError: bad value" in errors["exception.stacktrace"]
    assert errors["stage"] == "handle"
    assert errors["handler"] == "Collector.collect"
    assert errors["consumer.group"] == "metrics"
    assert errors["retry.count"] == "3"
    assert errors["first.failure.ts"] == "1700000000000"


def test_dead_lettering_twice_replaces_earlier_error_headers() -> None:
    first = dead_letter_headers(letter(ValueError("one")))
    second = dead_letter_headers(letter(KeyError("two"), headers=first))
    names = [k for k, _ in second if k == f"{ERROR_HEADER_PREFIX}.exception.message"]
    assert len(names) == 1
    assert error_headers_of(second)["exception.class.name"] == "builtins.KeyError"


def test_redrive_headers_drop_errors_and_name_the_failed_group() -> None:
    dead = dead_letter_headers(letter(ValueError("x")))
    once = redrive_headers(dead, for_group="metrics")
    assert error_headers_of(once) == {}
    assert header_value(once, REDRIVE_FOR_GROUP_HEADER) == b"metrics"
    assert header_value(once, "event_type") == b"agent_started"
    twice = redrive_headers(once, for_group="metrics")
    assert header_value(twice, "__agent_events.redrive.count") == b"2"


# --------------------------------------------------------------------- processing


class CollectingSink:
    def __init__(self) -> None:
        self.letters: list[DeadLetter] = []

    async def publish(self, letter: DeadLetter) -> None:
        self.letters.append(letter)


def record(
    value: bytes,
    offset: int = 0,
    key: bytes | None = b"s",
    headers: list[tuple[str, bytes]] | None = None,
) -> ConsumerRecord:  # type: ignore[type-arg]
    return ConsumerRecord(
        topic="t",
        partition=0,
        offset=offset,
        timestamp=0,
        timestamp_type=0,
        key=key,
        value=value,
        checksum=None,
        serialized_key_size=len(key or b""),
        serialized_value_size=len(value),
        headers=tuple(headers or ()),
    )


def event(i: int, session: str = "s") -> SystemEvent:
    return SystemEvent(
        event_type=EventType.AGENT_COMPLETED, agent_id="a", session_id=session, metadata={"i": i}
    )


def config(**overrides: object) -> ConsumerConfig:
    values: dict[str, object] = {"group_id": "g", "retry_backoff_s": 0.0, "max_retries": 2}
    values.update(overrides)
    return ConsumerConfig.model_validate(values)


async def test_undecodable_record_goes_to_the_dlq_at_once_without_retries() -> None:
    calls = 0

    async def handler(e: SystemEvent) -> None:
        nonlocal calls
        calls += 1

    bus = EventBus()
    await bus.subscribe(EventType.ANY, handler)
    sink = CollectingSink()
    processor = RecordProcessor(bus, config(), sink)
    unknown = b"\xc3\x01" + b"\x00" * 8 + b"\x02"
    await processor.process(record(b"garbage"))
    await processor.process(record(unknown, offset=1))
    assert calls == 0
    assert [letter.stage for letter in sink.letters] == ["decode", "decode"]
    assert isinstance(sink.letters[1].error, UnknownSchemaError)
    assert sink.letters[0].retry_count == 0
    assert processor.stats.decode_errors == 2


async def test_only_failed_handlers_are_retried_then_dead_lettered() -> None:
    good_calls = 0
    bad_calls = 0

    async def good(e: SystemEvent) -> None:
        nonlocal good_calls
        good_calls += 1

    async def bad(e: SystemEvent) -> None:
        nonlocal bad_calls
        bad_calls += 1
        raise RuntimeError("always")

    bus = EventBus()
    await bus.subscribe(EventType.ANY, good)
    await bus.subscribe(EventType.ANY, bad)
    sink = CollectingSink()
    processor = RecordProcessor(bus, config(max_retries=2), sink)
    await processor.process(record(encode_event(event(1))))
    assert good_calls == 1
    assert bad_calls == 3
    [dead] = sink.letters
    assert dead.stage == "handle"
    assert dead.retry_count == 2
    assert dead.handler is not None
    assert dead.handler.endswith("bad")
    assert isinstance(dead.error, RuntimeError)


async def test_handler_that_recovers_within_the_retry_budget_is_not_dead_lettered() -> None:
    attempts = 0

    async def flaky(e: SystemEvent) -> None:
        nonlocal attempts
        attempts += 1
        if attempts < 3:
            raise ConnectionError("transient")

    bus = EventBus()
    await bus.subscribe(EventType.ANY, flaky)
    sink = CollectingSink()
    processor = RecordProcessor(bus, config(max_retries=3), sink)
    await processor.process(record(encode_event(event(1))))
    assert attempts == 3
    assert sink.letters == []
    assert processor.stats.handled == 1
    assert processor.stats.retried == 2


async def test_hung_handler_times_out_and_is_dead_lettered() -> None:
    async def hangs(e: SystemEvent) -> None:
        await asyncio.Event().wait()

    bus = EventBus(handler_timeout=0.05)
    await bus.subscribe(EventType.ANY, hangs)
    sink = CollectingSink()
    processor = RecordProcessor(bus, config(max_retries=1), sink)
    async with asyncio.timeout(5):
        await processor.process(record(encode_event(event(1))))
    assert isinstance(sink.letters[0].error, HandlerTimeout)


async def test_redrive_meant_for_another_group_is_skipped() -> None:
    calls = 0

    async def handler(e: SystemEvent) -> None:
        nonlocal calls
        calls += 1

    bus = EventBus()
    await bus.subscribe(EventType.ANY, handler)
    processor = RecordProcessor(bus, config(group_id="store"), CollectingSink())
    value = encode_event(event(1))
    await processor.process(record(value, headers=[(REDRIVE_FOR_GROUP_HEADER, b"metrics")]))
    await processor.process(record(value, headers=[(REDRIVE_FOR_GROUP_HEADER, b"store")]))
    assert calls == 1
    assert processor.stats.skipped == 1


# ------------------------------------------------------------------------ ordering


class OrderProbe:
    """A handler that records per-session order and the peak concurrency."""

    def __init__(self) -> None:
        self.by_session: dict[str, list[int]] = defaultdict(list)
        self.running = 0
        self.peak = 0

    async def __call__(self, e: SystemEvent) -> None:
        self.running += 1
        self.peak = max(self.peak, self.running)
        await asyncio.sleep(0.001)
        self.by_session[str(e.session_id)].append(int(e.metadata["i"]))  # type: ignore[arg-type]
        self.running -= 1


async def run_worker(
    ordering: str, records: list[ConsumerRecord]
) -> tuple[OrderProbe, PartitionWorker]:  # type: ignore[type-arg]
    probe = OrderProbe()
    bus = EventBus()
    await bus.subscribe(EventType.ANY, probe)
    processor = RecordProcessor(bus, config(ordering=ordering), CollectingSink())
    worker = PartitionWorker(TopicPartition("t", 0), processor, ordering, max_concurrent_keys=8)  # type: ignore[arg-type]
    worker.submit(records)
    await worker.close(finish_queued=True, deadline_s=10)
    return probe, worker


def interleaved_records(sessions: int, per_session: int) -> list[ConsumerRecord]:  # type: ignore[type-arg]
    records = []
    offset = 0
    for i in range(per_session):
        for s in range(sessions):
            session = f"s{s}"
            records.append(
                record(encode_event(event(i, session)), offset=offset, key=session.encode())
            )
            offset += 1
    return records


async def test_per_partition_ordering_runs_one_record_at_a_time_in_offset_order() -> None:
    probe, worker = await run_worker("partition", interleaved_records(5, 10))
    assert probe.peak == 1
    assert all(seq == list(range(10)) for seq in probe.by_session.values())
    assert worker.tracker.committable() == 50


async def test_per_key_ordering_keeps_sessions_in_order_and_runs_them_concurrently() -> None:
    probe, worker = await run_worker("key", interleaved_records(20, 10))
    assert 1 < probe.peak <= 8
    assert len(probe.by_session) == 20
    assert all(seq == list(range(10)) for seq in probe.by_session.values())
    assert worker.tracker.committable() == 200


async def test_revocation_drops_records_not_started_and_commits_only_the_done_prefix() -> None:
    gate = asyncio.Event()

    async def gated(e: SystemEvent) -> None:
        await gate.wait()

    bus = EventBus(handler_timeout=None)
    await bus.subscribe(EventType.ANY, gated)
    processor = RecordProcessor(bus, config(), CollectingSink())
    worker = PartitionWorker(TopicPartition("t", 0), processor, "partition", 1)
    worker.submit([record(encode_event(event(i)), offset=i) for i in range(5)])
    await asyncio.sleep(0.01)
    closing = asyncio.create_task(worker.close(finish_queued=False, deadline_s=5))
    await asyncio.sleep(0.01)
    gate.set()
    await closing
    assert worker.tracker.committable() == 1  # only offset 0 was in flight
    assert worker.pending == 0


async def test_in_flight_work_past_the_deadline_is_abandoned_not_committed() -> None:
    async def hangs(e: SystemEvent) -> None:
        await asyncio.Event().wait()

    bus = EventBus(handler_timeout=None)
    await bus.subscribe(EventType.ANY, hangs)
    processor = RecordProcessor(bus, config(), CollectingSink())
    worker = PartitionWorker(TopicPartition("t", 0), processor, "partition", 1)
    worker.submit([record(encode_event(event(0)), offset=0)])
    await asyncio.sleep(0.01)
    async with asyncio.timeout(5):
        await worker.close(finish_queued=False, deadline_s=0.05)
    assert worker.tracker.committable() is None
