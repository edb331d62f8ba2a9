"""Replay against real brokers: sessions, timestamps, offsets, sinks, store rebuild, bad arguments."""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from kafka_support import produce

from agent_events.agent_runtime.event_bus import EventType, SystemEvent
from agent_events.broker.pytest_fixtures import NewTopic, RunningBroker
from agent_events.cli import main as cli_main
from agent_events.consumers import ConsumerService
from agent_events.consumers.groups import describe_group
from agent_events.consumers.handlers import EventSourcingHandler, SQLiteEventStore
from agent_events.consumers.replay import (
    FromOffsets,
    FromShift,
    FromTime,
    HandlerSink,
    ReplaySpec,
    ServiceSink,
    TopicSink,
    UntilOffsets,
    plan_replay,
    replay,
)
from agent_events.producers.config import KafkaConnectionConfig
from agent_events.producers.partitioner import partition_for_key
from agent_events.schemas.codec import encode_event

SESSIONS = 12
PER_SESSION = 10


def event(
    session: str, seq: int, *, agent: str = "agent", kind: EventType | None = None
) -> SystemEvent:
    return SystemEvent(
        event_type=kind or (EventType.AGENT_STARTED if seq % 2 == 0 else EventType.AGENT_COMPLETED),
        agent_id=agent,
        session_id=session,
        metadata={"seq": seq},
    )


def workload() -> list[SystemEvent]:
    """SESSIONS sessions of PER_SESSION events each, interleaved as agents would send them."""
    return [
        event(f"s{s}", i, agent=f"agent-{s % 3}")
        for i in range(PER_SESSION)
        for s in range(SESSIONS)
    ]


class Recorder:
    """A handler that keeps every event it is given, in order."""

    def __init__(self) -> None:
        self.events: list[SystemEvent] = []

    async def __call__(self, e: SystemEvent) -> None:
        self.events.append(e)


def conn(broker: RunningBroker) -> KafkaConnectionConfig:
    return KafkaConnectionConfig(bootstrap_servers=broker.bootstrap_servers)


async def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run ``agent-events ARGS`` in a thread (it runs its own event loop)."""
    code = await asyncio.to_thread(cli_main, list(args))
    out, err = capsys.readouterr()
    return code, out, err


async def test_session_replay_returns_exactly_its_events_in_order(
    broker: RunningBroker, new_topic: NewTopic
) -> None:
    topic = await new_topic(partitions=4)
    await produce(broker.bootstrap_servers, topic, workload())
    recorder = Recorder()
    report = await replay(conn(broker), ReplaySpec(topic, session_id="s7"), HandlerSink(recorder))
    assert [e.session_id for e in recorder.events] == ["s7"] * PER_SESSION
    assert [e.metadata["seq"] for e in recorder.events] == list(range(PER_SESSION))  # type: ignore[index]
    home = partition_for_key(b"s7", 4)
    assert [r.partition for r in report.plan.ranges] == [home]
    assert set(report.last_offsets) == {home}
    assert report.delivered == PER_SESSION
    assert report.read == report.plan.records  # the whole partition, and only it


async def test_whole_topic_replay_reads_every_record_of_multi_record_batches(
    broker: RunningBroker, new_topic: NewTopic
) -> None:
    topic = await new_topic(partitions=3)
    events = workload()
    await produce(broker.bootstrap_servers, topic, events)
    recorder = Recorder()
    plan = await plan_replay(conn(broker), ReplaySpec(topic))
    assert plan.records == len(events)
    report = await replay(conn(broker), ReplaySpec(topic), HandlerSink(recorder), plan=plan)
    assert report.delivered == len(events)
    assert sorted(e.event_id for e in recorder.events) == sorted(e.event_id for e in events)
    by_session: dict[str, list[int]] = defaultdict(list)
    for e in recorder.events:
        by_session[str(e.session_id)].append(int(e.metadata["seq"]))  # type: ignore[index]
    assert all(seqs == list(range(PER_SESSION)) for seqs in by_session.values())


@pytest.mark.needs("offsets_for_times")
async def test_replay_from_a_timestamp_starts_at_the_first_event_at_or_after_it_in_every_partition(
    broker: RunningBroker, new_topic: NewTopic
) -> None:
    topic = await new_topic(partitions=3)
    base = int(datetime.now(UTC).timestamp() * 1000) - 600_000
    written: dict[int, list[tuple[int, int]]] = defaultdict(list)  # partition -> (offset, ts)
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers, acks="all")
    await producer.start()
    try:
        for i in range(30):
            partition = i % 3
            ts = base + i * 1000 + partition * 137  # each partition has its own timestamps
            meta = await producer.send_and_wait(
                topic,
                encode_event(event(f"p{partition}", i)),
                key=f"p{partition}".encode(),
                partition=partition,
                timestamp_ms=ts,
            )
            written[partition].append((meta.offset, ts))
    finally:
        await producer.stop()
    moment_ms = base + 14_500  # between records 14 and 15
    expected = {
        p: next(offset for offset, ts in records if ts >= moment_ms)
        for p, records in written.items()
    }
    spec = ReplaySpec(topic, start=FromTime(datetime.fromtimestamp(moment_ms / 1000, UTC)))
    seen: dict[int, list[int]] = defaultdict(list)

    class OffsetsSeen(HandlerSink):
        async def write(self, record: Any, e: SystemEvent | None) -> None:
            seen[record.partition].append(record.offset)

    report = await replay(conn(broker), spec, OffsetsSeen(lambda e: None))
    assert {r.partition: r.start for r in report.plan.ranges} == expected
    for p, records in written.items():
        assert seen[p] == [offset for offset, ts in records if offset >= expected[p]]
        assert all(ts >= moment_ms for offset, ts in records if offset in seen[p])


async def test_offset_and_shift_ranges_are_read_exactly(
    broker: RunningBroker, new_topic: NewTopic
) -> None:
    topic = await new_topic(partitions=2)
    await produce(broker.bootstrap_servers, topic, workload())
    plan = await plan_replay(conn(broker), ReplaySpec(topic))
    ends = {r.partition: r.stop for r in plan.ranges}
    seen: dict[int, list[int]] = defaultdict(list)

    class OffsetsSeen(HandlerSink):
        async def write(self, record: Any, e: SystemEvent | None) -> None:
            seen[record.partition].append(record.offset)

    spec = ReplaySpec(topic, start=FromOffsets({0: 3, 1: 5}), stop=UntilOffsets({0: 9}))
    await replay(conn(broker), spec, OffsetsSeen(lambda e: None))
    assert seen == {0: list(range(3, 9)), 1: list(range(5, ends[1]))}
    seen.clear()
    await replay(conn(broker), ReplaySpec(topic, start=FromShift(4)), OffsetsSeen(lambda e: None))
    assert seen == {p: list(range(end - 4, end)) for p, end in ends.items()}


async def test_store_rebuilt_by_replay_equals_the_store_the_service_built(
    broker: RunningBroker, new_topic: NewTopic, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    topic = await new_topic(partitions=3)
    events = workload()
    await produce(broker.bootstrap_servers, topic, events)
    async with SQLiteEventStore(tmp_path / "original.db") as original:
        handler = EventSourcingHandler(original)
        async with ConsumerService(
            bootstrap_servers=broker.bootstrap_servers,
            topics=[topic],
            group_id=f"{topic}-store",
            dlq_topic=None,
            handlers=[handler],
        ) as service:
            runner = asyncio.create_task(service.run())
            try:
                async with asyncio.timeout(60):
                    while await original.count() < len(events):
                        if runner.done():
                            runner.result()
                        await asyncio.sleep(0.05)
            finally:
                service.request_stop()
                await runner
        want = {s: await original.read(session_id=f"s{s}") for s in range(SESSIONS)}
    rebuilt_path = tmp_path / "rebuilt.db"
    for _ in range(2):  # a second replay adds nothing: the store is idempotent on event_id
        code, _, err = await run_cli(
            capsys,
            "replay",
            "--topic",
            topic,
            "--to-store",
            f"sqlite:{rebuilt_path}",
            "--bootstrap-servers",
            broker.bootstrap_servers,
        )
        assert code == 0, err
    async with SQLiteEventStore(rebuilt_path) as rebuilt:
        assert await rebuilt.count() == len(events)
        got = {s: await rebuilt.read(session_id=f"s{s}") for s in range(SESSIONS)}
    assert got == want


async def test_replay_to_a_topic_keeps_key_value_and_headers_in_session_order(
    broker: RunningBroker, new_topic: NewTopic
) -> None:
    topic = await new_topic(partitions=3)
    target = await new_topic(partitions=2)
    await produce(broker.bootstrap_servers, topic, workload())
    report = await replay(
        conn(broker),
        ReplaySpec(topic, agent_ids=frozenset({"agent-1"})),
        TopicSink(conn(broker), target),
    )
    source = await read_raw(broker.bootstrap_servers, topic, report.read)
    copied = await read_raw(broker.bootstrap_servers, target, report.delivered)
    expected = [r for r in source if r[0] in {f"s{s}".encode() for s in range(1, SESSIONS, 3)}]
    assert report.delivered == len(expected) == 4 * PER_SESSION
    by_key = defaultdict(list)
    for r in copied:
        by_key[r[0]].append(r)
    assert {k: v for k, v in by_key.items()} == {
        k: [r for r in expected if r[0] == k] for k in {r[0] for r in expected}
    }


async def read_raw(bootstrap: str, topic: str, count: int) -> list[tuple[Any, ...]]:
    """(key, value, headers) of ``count`` records, in offset order per partition."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    got: list[tuple[Any, ...]] = []
    try:
        async with asyncio.timeout(60):
            while len(got) < count:
                batch = await consumer.getmany(timeout_ms=500)
                for records in batch.values():
                    got += [(r.key, r.value, tuple(r.headers)) for r in records]
    finally:
        await consumer.stop()
    return got


async def test_service_sink_runs_each_handler_on_its_event_types(
    broker: RunningBroker, new_topic: NewTopic
) -> None:
    topic = await new_topic(partitions=2)
    await produce(broker.bootstrap_servers, topic, workload())
    every, completed = Recorder(), Recorder()
    report = await replay(
        conn(broker),
        ReplaySpec(topic, count=25),
        ServiceSink([every, (EventType.AGENT_COMPLETED, completed)]),
    )
    assert report.stopped_by == "count"
    assert len(every.events) == report.delivered == 25
    assert completed.events == [
        e for e in every.events if e.event_type is EventType.AGENT_COMPLETED
    ]


async def test_cli_replays_one_session_as_json_lines_with_type_filter(
    broker: RunningBroker, new_topic: NewTopic, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    topic = await new_topic(partitions=3)
    await produce(broker.bootstrap_servers, topic, workload())
    out_file = tmp_path / "s3.jsonl"
    args = ["replay", "-t", topic, "--session", "s3", "--type", "agent_completed"]
    code, out, err = await run_cli(
        capsys, *args, "--dry-run", "--json", "-b", broker.bootstrap_servers
    )
    assert code == 0, err
    plan = json.loads(out)
    assert [p["partition"] for p in plan["partitions"]] == [partition_for_key(b"s3", 3)]
    code, out, err = await run_cli(
        capsys, *args, "--to-file", str(out_file), "-b", broker.bootstrap_servers
    )
    assert code == 0, err
    assert "replayed 5 events" in err
    lines = [json.loads(line) for line in out_file.read_text().splitlines()]
    assert [line["payload"]["metadata"]["seq"] for line in lines] == [1, 3, 5, 7, 9]
    assert {line["key"] for line in lines} == {"s3"}


async def test_bad_arguments_exit_2_with_one_line(
    broker: RunningBroker, new_topic: NewTopic, capsys: pytest.CaptureFixture[str]
) -> None:
    topic = await new_topic(partitions=2)
    await produce(broker.bootstrap_servers, topic, workload()[:10])
    bs = ["-b", broker.bootstrap_servers]
    cases = {
        "does not exist": ["replay", "-t", f"{topic}-missing", *bs],
        "in the future": ["replay", "-t", topic, "--from-time", "2999-01-01T00:00:00Z", *bs],
        "out of range": ["replay", "-t", topic, "--from-offset", "1:999", *bs],
        "no partition 7": ["replay", "-t", topic, "--partition", "7", *bs],
        "conflict": ["replay", "-t", topic, "--from-beginning", "--from-offset", "0", *bs],
    }
    for needle, args in cases.items():
        code, out, err = await run_cli(capsys, *args)
        assert code == 2, (args, err)
        assert len(err.strip().splitlines()) == 1, err
        assert needle in err, err
        assert out == ""


async def test_timestamp_replay_is_refused_where_the_broker_answers_offsets_for_times_wrongly(
    broker: RunningBroker,
    broker_capabilities: Any,
    new_topic: NewTopic,
    capsys: pytest.CaptureFixture[str],
) -> None:
    if broker_capabilities.supports("offsets_for_times"):
        pytest.skip(f"{broker.kind} answers offsets_for_times exactly")
    topic = await new_topic(partitions=1)
    await produce(broker.bootstrap_servers, topic, workload()[:5])
    code, _, err = await run_cli(
        capsys,
        "replay",
        "-t",
        topic,
        "--from-time",
        "2020-01-01T00:00:00Z",
        "--dry-run",
        "-b",
        broker.bootstrap_servers,
    )
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
    assert "offsets_for_times" in err
    assert "run it against Apache Kafka" in err


@pytest.mark.needs("group_offsets")
async def test_replay_moves_no_consumer_group_offsets(
    broker: RunningBroker, new_topic: NewTopic, tmp_path: Path
) -> None:
    topic = await new_topic(partitions=2)
    await produce(broker.bootstrap_servers, topic, workload())
    group = f"{topic}-g"
    consumer = AIOKafkaConsumer(
        bootstrap_servers=broker.bootstrap_servers, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, 0), TopicPartition(topic, 1)]
        consumer.assign(tps)
        await consumer.commit({tps[0]: 3, tps[1]: 4})
    finally:
        await consumer.stop()
    before = await describe_group(conn(broker), group)
    await replay(conn(broker), ReplaySpec(topic), HandlerSink(Recorder()))
    after = await describe_group(conn(broker), group)
    assert [(p.partition, p.current_offset) for p in after.partitions] == [(0, 3), (1, 4)]
    assert after.partitions == before.partitions


async def test_undecodable_records_are_skipped_by_event_sinks_and_copied_by_the_topic_sink(
    broker: RunningBroker, new_topic: NewTopic
) -> None:
    topic = await new_topic(partitions=1)
    target = await new_topic(partitions=1)
    good = [event("s1", i) for i in range(6)]
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers, acks="all")
    await producer.start()
    try:
        for i, e in enumerate(good):
            await producer.send_and_wait(topic, encode_event(e), key=b"s1")
            if i % 2 == 0:
                await producer.send_and_wait(topic, b"\x00not avro", key=b"s1")
    finally:
        await producer.stop()
    recorder = Recorder()
    report = await replay(conn(broker), ReplaySpec(topic), HandlerSink(recorder))
    assert report.undecodable == 3
    assert [e.event_id for e in recorder.events] == [e.event_id for e in good]
    copied = await replay(conn(broker), ReplaySpec(topic), TopicSink(conn(broker), target))
    assert copied.delivered == len(good) + 3


async def test_a_failing_handler_stops_the_replay_at_its_record(
    broker: RunningBroker, new_topic: NewTopic
) -> None:
    topic = await new_topic(partitions=1)
    await produce(broker.bootstrap_servers, topic, [event("s1", i) for i in range(10)])
    handled: list[int] = []

    async def fails_on_the_fourth(e: SystemEvent) -> None:
        if len(handled) == 3:
            raise RuntimeError("store is down")
        handled.append(int(e.metadata["seq"]))  # type: ignore[index]

    with pytest.raises(RuntimeError, match="store is down") as raised:
        await replay(conn(broker), ReplaySpec(topic), HandlerSink(fails_on_the_fourth))
    assert handled == [0, 1, 2]
    assert any("[0] offset 3 " in note for note in raised.value.__notes__)


async def test_cli_replay_merges_partitions_by_timestamp_the_same_way_every_time(
    broker: RunningBroker, new_topic: NewTopic, capsys: pytest.CaptureFixture[str]
) -> None:
    topic = await new_topic(partitions=3)
    base = int(datetime.now(UTC).timestamp() * 1000) - 600_000
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers, acks="all")
    await producer.start()
    try:
        # Partition 2 holds the oldest record; the partitions' timestamps interleave.
        for i in range(30):
            partition = 2 - i % 3
            await producer.send_and_wait(
                topic,
                encode_event(event(f"p{partition}", i)),
                key=f"p{partition}".encode(),
                partition=partition,
                timestamp_ms=base + i * 1000,
            )
    finally:
        await producer.stop()
    b = ("-b", broker.bootstrap_servers)

    code, out, err = await run_cli(capsys, "replay", "-t", topic, *b)
    assert code == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert [line["ts"] for line in lines] == [base + i * 1000 for i in range(30)]
    assert "replayed 30 events" in err

    firsts = []
    for _ in range(2):
        code, out, err = await run_cli(capsys, "replay", "-t", topic, "--count", "1", *b)
        assert code == 0, err
        (line,) = out.splitlines()
        firsts.append((json.loads(line)["partition"], json.loads(line)["offset"]))
        assert "replayed 1 event (" in err
    assert firsts == [(2, 0), (2, 0)]
