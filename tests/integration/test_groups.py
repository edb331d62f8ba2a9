"""Consumer-group tooling against real brokers: describe with lag, reset offsets, refusals."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from kafka_support import produce

from agent_events.agent_runtime.event_bus import EventType, SystemEvent
from agent_events.broker.pytest_fixtures import NewTopic, RunningBroker
from agent_events.cli import main as cli_main
from agent_events.consumers import ConsumerService
from agent_events.consumers.groups import describe_group
from agent_events.producers.config import KafkaConnectionConfig
from agent_events.producers.partitioner import partition_for_key


def numbered(partition_key: str, i: int) -> SystemEvent:
    return SystemEvent(
        event_type=EventType.AGENT_COMPLETED,
        agent_id="agent",
        session_id=partition_key,
        metadata={"n": i},
    )


class Seen:
    """Records (session, n) of every handled event."""

    def __init__(self) -> None:
        self.items: list[tuple[str, int]] = []

    async def __call__(self, e: SystemEvent) -> None:
        self.items.append((str(e.session_id), int(e.metadata["n"])))  # type: ignore[index]


async def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = await asyncio.to_thread(cli_main, list(args))
    out, err = capsys.readouterr()
    return code, out, err


async def committed(bootstrap: str, group: str, tps: list[TopicPartition]) -> dict[int, int | None]:
    """The group's committed offsets, read without joining it."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        return {tp.partition: await consumer.committed(tp) for tp in tps}
    finally:
        await consumer.stop()


async def run_service_until(
    broker: RunningBroker, topic: str, group: str, seen: Seen, done: Callable[[], Any]
) -> None:
    """Run a ConsumerService of ``group`` until ``done()`` (checked each 50 ms; 60 s deadline)."""
    async with ConsumerService(
        bootstrap_servers=broker.bootstrap_servers,
        topics=[topic],
        group_id=group,
        dlq_topic=None,
        commit_interval_s=0.1,
        handlers=[seen],
    ) as service:
        runner = asyncio.create_task(service.run())
        try:
            async with asyncio.timeout(60):
                while not await done():
                    if runner.done():
                        runner.result()
                    await asyncio.sleep(0.05)
        finally:
            service.request_stop()
            await runner


async def load(broker: RunningBroker, new_topic: NewTopic) -> tuple[str, dict[str, int]]:
    """A 3-partition topic with 3 sessions of 10 events each (``n`` = 0..9 per session)."""
    topic = await new_topic(partitions=3)
    sessions = {"alpha": 10, "bravo": 10, "charlie": 10}
    events = [numbered(s, i) for i in range(10) for s in sessions]
    await produce(broker.bootstrap_servers, topic, events)
    return topic, sessions


@pytest.mark.needs("group_offsets")
async def test_reset_then_restarted_service_reprocesses_exactly_the_expected_range(
    broker: RunningBroker, new_topic: NewTopic, capsys: pytest.CaptureFixture[str]
) -> None:
    topic, sessions = await load(broker, new_topic)
    group = f"{topic}-g"
    tps = [TopicPartition(topic, p) for p in range(3)]
    first = Seen()

    async def all_handled_and_committed() -> bool:
        offsets = await committed(broker.bootstrap_servers, group, tps)
        return len(first.items) >= 30 and all(o is not None for o in offsets.values())

    await run_service_until(broker, topic, group, first, all_handled_and_committed)
    description = await describe_group(
        KafkaConnectionConfig(bootstrap_servers=broker.bootstrap_servers), group
    )
    ends = {p.partition: p.log_end_offset for p in description.partitions}
    assert all(p.lag == 0 for p in description.partitions)
    bs = ["--bootstrap-servers", broker.bootstrap_servers]
    code, _, err = await run_cli(
        capsys,
        "groups",
        "reset-offsets",
        "--group",
        group,
        "--topic",
        f"{topic}:0",
        "--shift-by",
        "-4",
        "--execute",
        *bs,
    )
    assert code == 0, err
    code, _, err = await run_cli(
        capsys,
        "groups",
        "reset-offsets",
        "--group",
        group,
        "--topic",
        f"{topic}:1",
        "--to-offset",
        "3",
        "--execute",
        *bs,
    )
    assert code == 0, err
    new_offsets = {0: max(0, ends[0] - 4), 1: min(3, ends[1]), 2: ends[2]}
    assert await committed(broker.bootstrap_servers, group, tps) == new_offsets

    # Each partition's log, in offset order: the sessions hashed to it, as they were produced.
    log = {
        p: [(s, i) for i in range(10) for s in sessions if partition_for_key(s.encode(), 3) == p]
        for p in range(3)
    }
    expected = {p: log[p][new_offsets[p] :] for p in range(3)}
    second = Seen()

    async def reprocessed_and_committed() -> bool:
        offsets = await committed(broker.bootstrap_servers, group, tps)
        return len(second.items) >= sum(map(len, expected.values())) and offsets == ends

    await run_service_until(broker, topic, group, second, reprocessed_and_committed)
    got = {
        p: [item for item in second.items if partition_for_key(item[0].encode(), 3) == p]
        for p in range(3)
    }
    assert got == expected


@pytest.mark.needs("group_offsets")
async def test_describe_shows_members_assignment_offsets_and_lag_and_reset_is_refused_while_active(
    broker: RunningBroker, new_topic: NewTopic, capsys: pytest.CaptureFixture[str]
) -> None:
    topic, _ = await load(broker, new_topic)
    group = f"{topic}-g"
    tps = [TopicPartition(topic, p) for p in range(3)]
    member = AIOKafkaConsumer(
        topic,
        bootstrap_servers=broker.bootstrap_servers,
        group_id=group,
        client_id="lag-probe",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await member.start()
    try:
        async with asyncio.timeout(60):
            while len(member.assignment()) < 3:
                await member.getmany(timeout_ms=200)
        await member.commit({tps[0]: 2, tps[1]: 0})
        bs = ["--bootstrap-servers", broker.bootstrap_servers]
        code, out, err = await run_cli(capsys, "groups", "describe", group, "--json", *bs)
        assert code == 0, err
        described = json.loads(out)
        assert described["state"] == "Stable"
        assert [m["client_id"] for m in described["members"]] == ["lag-probe"]
        assert sorted(described["members"][0]["assignment"]) == [f"{topic}:{p}" for p in range(3)]
        rows = {r["partition"]: r for r in described["partitions"]}
        assert rows[0]["current_offset"] == 2
        assert rows[0]["lag"] == rows[0]["log_end_offset"] - 2
        assert rows[1]["lag"] == rows[1]["log_end_offset"]
        assert rows[2]["current_offset"] is None
        assert rows[2]["lag"] is None
        assert {r["client_id"] for r in rows.values()} == {"lag-probe"}

        code, out, _ = await run_cli(capsys, "groups", "describe", group, *bs)
        assert code == 0
        assert "GROUP" in out
        assert "CURRENT-OFFSET  LOG-END-OFFSET  LAG  CONSUMER-ID" in out

        code, out, err = await run_cli(
            capsys,
            "groups",
            "reset-offsets",
            "--group",
            group,
            "--topic",
            topic,
            "--to-earliest",
            "--execute",
            *bs,
        )
        assert code == 2
        assert len(err.strip().splitlines()) == 1, err
        assert "active member" in err
    finally:
        await member.stop()
    assert await committed(broker.bootstrap_servers, group, tps) == {0: 2, 1: 0, 2: None}


@pytest.mark.needs("group_offsets")
async def test_reset_is_a_dry_run_unless_execute_is_given(
    broker: RunningBroker, new_topic: NewTopic, capsys: pytest.CaptureFixture[str]
) -> None:
    topic, _ = await load(broker, new_topic)
    group = f"{topic}-g"
    tps = [TopicPartition(topic, p) for p in range(3)]
    consumer = AIOKafkaConsumer(
        bootstrap_servers=broker.bootstrap_servers, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        consumer.assign(tps)
        await consumer.commit({tp: 1 for tp in tps})
    finally:
        await consumer.stop()
    bs = ["--bootstrap-servers", broker.bootstrap_servers]
    code, out, err = await run_cli(
        capsys,
        "groups",
        "reset-offsets",
        "--group",
        group,
        "--all-topics",
        "--to-latest",
        "--json",
        *bs,
    )
    assert code == 0, err
    plan = json.loads(out)
    assert plan["executed"] is False
    assert [(o["partition"], o["current_offset"]) for o in plan["offsets"]] == [
        (0, 1),
        (1, 1),
        (2, 1),
    ]
    assert await committed(broker.bootstrap_servers, group, tps) == {0: 1, 1: 1, 2: 1}
    code, out, err = await run_cli(capsys, "groups", "list", "--json", *bs)
    assert code == 0, err
    assert {"group": group, "state": "Empty", "members": 0} in json.loads(out)


@pytest.mark.needs("group_offsets")
async def test_group_mistakes_exit_2_with_one_line(
    broker: RunningBroker, new_topic: NewTopic, capsys: pytest.CaptureFixture[str]
) -> None:
    topic = await new_topic(partitions=2)
    bs = ["--bootstrap-servers", broker.bootstrap_servers]
    reset = ["groups", "reset-offsets", "--group", f"{topic}-g"]
    cases = {
        "does not exist": ["groups", "describe", f"{topic}-nobody", *bs],
        "no partition 5": [*reset, "--topic", f"{topic}:5", "--to-earliest", *bs],
        "in the future": [*reset, "--topic", topic, "--to-datetime", "2999-01-01T00:00:00", *bs],
        "conflict": [*reset, "--topic", topic, "--to-earliest", "--shift-by", "-1", *bs],
        "exist": [*reset, "--topic", f"{topic}-missing", "--to-earliest", *bs],
    }
    for needle, args in cases.items():
        code, out, err = await run_cli(capsys, *args)
        assert code == 2, (args, err)
        assert len(err.strip().splitlines()) == 1, err
        assert needle in err, err
        assert out == ""


async def test_group_tools_refuse_a_broker_that_cannot_list_group_offsets(
    broker: RunningBroker, broker_capabilities: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    if broker_capabilities.supports("group_offsets"):
        pytest.skip(f"{broker.kind} lists group offsets")
    bs = ["--bootstrap-servers", broker.bootstrap_servers]
    for args in (["groups", "list"], ["groups", "describe", "some-group"]):
        code, _, err = await run_cli(capsys, *args, *bs)
        assert code == 2
        assert len(err.strip().splitlines()) == 1, err
        assert "listing a consumer group's committed offsets" in err
