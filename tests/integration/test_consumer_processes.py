"""Consumer-group members as real processes: SIGTERM, SIGKILL, members joining and leaving.

The oracle is Kafka's system tests': every acknowledged event is handled (``acked -
handled`` is empty), duplicates are counted and must lie in the killed member's
uncommitted work, and each member handles each session's events in order.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from kafka_support import produce

from agent_events.agent_runtime.event_bus import EventType, SystemEvent
from agent_events.broker.pytest_fixtures import NewTopic, RunningBroker
from agent_events.producers import partition_for_key
from tests.conftest import FaultLedger

pytestmark = [
    pytest.mark.broker_kinds("kafka"),  # Tansu takes 5-8 s per rebalance; these tests do many
    pytest.mark.slow,
]

SCRIPT = Path(__file__).with_name("consumer_process.py")


class Member:
    """One consumer process writing what it handled to its own file."""

    def __init__(
        self, bootstrap: str, topic: str, group: str, ordering: str, out: Path, delay: float
    ) -> None:
        self.out = out
        self.proc = subprocess.Popen(
            [sys.executable, str(SCRIPT), bootstrap, topic, group, ordering, str(out), str(delay)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    async def ready(self, deadline_s: float = 60) -> None:
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(self.proc.stdout.readline), deadline_s)
        assert line.strip() == "READY", f"member did not start: {line!r} {self._stderr()}"

    def handled(self) -> list[tuple[str, int]]:
        if not self.out.exists():
            return []
        return [(row["session"], row["seq"]) for row in complete_json_lines(self.out)]

    async def stop(self, sig: signal.Signals, deadline_s: float = 60) -> int:
        self.proc.send_signal(sig)
        return await asyncio.wait_for(asyncio.to_thread(self.proc.wait), deadline_s)

    def _stderr(self) -> str:
        if self.proc.poll() is None or self.proc.stderr is None:
            return ""
        return self.proc.stderr.read()[-3000:]

    def kill_now(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def events_for(sessions: int, per_session: int) -> list[SystemEvent]:
    return [
        SystemEvent(
            event_type=EventType.AGENT_COMPLETED,
            agent_id="a",
            session_id=f"s{s}",
            metadata={"seq": i},
        )
        for i in range(per_session)
        for s in range(sessions)
    ]


def complete_json_lines(path: Path) -> list[dict[str, Any]]:
    """The JSON lines a running process has finished writing (the last may be half done)."""
    text = path.read_text()
    return [json.loads(line) for line in text[: text.rfind("\n") + 1].splitlines() if line.strip()]


async def wait_for(condition: Callable[[], bool], deadline_s: float, what: str) -> None:
    """Poll files another process writes (nothing to await), up to a deadline."""
    try:
        async with asyncio.timeout(deadline_s):
            while not condition():  # noqa: ASYNC110
                await asyncio.sleep(0.1)
    except TimeoutError:
        pytest.fail(f"timed out after {deadline_s}s waiting for: {what}")


def total_handled(members: list[Member]) -> list[tuple[str, int]]:
    return [row for m in members for row in m.handled()]


async def committed(bootstrap: str, group: str, topic: str, partitions: int) -> dict[int, int]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        return {
            p: (await consumer.committed(TopicPartition(topic, p))) or 0 for p in range(partitions)
        }
    finally:
        await consumer.stop()


async def offsets_of(
    bootstrap: str, topic: str, count: int
) -> dict[tuple[str, int], tuple[int, int]]:
    """(session, seq) -> (partition, offset) for every record of the topic."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    found: dict[tuple[str, int], tuple[int, int]] = {}
    from agent_events.schemas.codec import decode_event

    try:
        while len(found) < count:
            batch = await consumer.getmany(timeout_ms=10_000)
            assert batch
            for recs in batch.values():
                for r in recs:
                    e = decode_event(r.value)
                    found[(str(e.session_id), int(e.metadata["seq"]))] = (r.partition, r.offset)  # type: ignore[arg-type]
    finally:
        await consumer.stop()
    return found


@pytest.fixture
def members() -> Iterator[list[Member]]:
    started: list[Member] = []
    yield started
    for member in started:
        member.kill_now()


async def test_sigterm_drains_commits_and_exits_zero(
    broker: RunningBroker, new_topic: NewTopic, tmp_path: Path, members: list[Member]
) -> None:
    topic = await new_topic(partitions=4)
    group = f"{topic}-g"
    events = events_for(100, 20)
    await produce(broker.bootstrap_servers, topic, events)
    first = Member(
        broker.bootstrap_servers, topic, group, "partition", tmp_path / "first.jsonl", 0.005
    )
    members.append(first)
    await first.ready()
    await wait_for(lambda: len(first.handled()) >= 50, 60, "first member handles some events")
    assert await first.stop(signal.SIGTERM) == 0
    handled_before = first.handled()
    assert len(handled_before) < len(events), "SIGTERM came too late to test a drain"
    second = Member(
        broker.bootstrap_servers, topic, group, "partition", tmp_path / "second.jsonl", 0.0
    )
    members.append(second)
    await second.ready()
    await wait_for(
        lambda: len(handled_before) + len(second.handled()) >= len(events), 60, "all handled"
    )
    assert await second.stop(signal.SIGTERM) == 0
    everything = handled_before + second.handled()
    duplicates = [k for k, n in Counter(everything).items() if n > 1]
    assert duplicates == [], "a clean shutdown commits everything it handled"
    assert set(everything) == {(str(e.session_id), int(e.metadata["seq"])) for e in events}  # type: ignore[arg-type]


@pytest.mark.faults
async def test_sigkill_loses_nothing_and_duplicates_only_uncommitted_work(
    broker: RunningBroker,
    new_topic: NewTopic,
    tmp_path: Path,
    members: list[Member],
    fault_ledger: FaultLedger,
) -> None:
    topic = await new_topic(partitions=4)
    group = f"{topic}-g"
    events = events_for(50, 12)
    await produce(broker.bootstrap_servers, topic, events)
    victim = Member(
        broker.bootstrap_servers, topic, group, "partition", tmp_path / "victim.jsonl", 0.01
    )
    members.append(victim)
    await victim.ready()
    await wait_for(lambda: len(victim.handled()) >= 300, 60, "victim handles some events")
    await victim.stop(signal.SIGKILL)
    handled_by_victim = victim.handled()
    committed_at_kill = await committed(broker.bootstrap_servers, group, topic, 4)
    replacement = Member(
        broker.bootstrap_servers, topic, group, "key", tmp_path / "replacement.jsonl", 0.0
    )
    members.append(replacement)
    await replacement.ready()
    acked = {(str(e.session_id), int(e.metadata["seq"])) for e in events}  # type: ignore[arg-type]
    await wait_for(
        lambda: acked <= set(handled_by_victim) | set(replacement.handled()), 90, "catch-up"
    )
    assert await replacement.stop(signal.SIGTERM) == 0
    everything = handled_by_victim + replacement.handled()
    duplicates = [k for k, n in Counter(everything).items() if n > 1]
    fault_ledger(
        "consumer service: member SIGKILLed mid-batch, a new member takes over",
        sent=len(events),
        acknowledged=len(acked),
        consumed=len(set(everything)),
        lost=len(acked - set(everything)),
        duplicated=len(duplicates),
    )
    assert acked - set(everything) == set()
    where = await offsets_of(broker.bootstrap_servers, topic, len(events))
    for key in duplicates:
        partition, offset = where[key]
        assert offset >= committed_at_kill[partition], f"{key} was committed yet handled twice"
    print(
        f"SIGKILL: {len(handled_by_victim)} handled before the kill, {len(duplicates)} handled twice"
    )


@pytest.mark.parametrize("ordering", ["partition", "key"])
async def test_members_joining_and_leaving_keep_every_session_in_order(
    broker: RunningBroker, new_topic: NewTopic, tmp_path: Path, members: list[Member], ordering: str
) -> None:
    topic = await new_topic(partitions=12)
    group = f"{topic}-g"
    sessions, per_session = 1000, 4
    events = events_for(sessions, per_session)
    assert len({partition_for_key(f"s{s}".encode(), 12) for s in range(sessions)}) == 12
    await produce(broker.bootstrap_servers, topic, events)
    delay = 0.02 if ordering == "partition" else 0.5  # enough work for members to come and go
    first = Member(broker.bootstrap_servers, topic, group, ordering, tmp_path / "m1.jsonl", delay)
    members.append(first)
    await first.ready()
    await wait_for(lambda: len(first.handled()) >= 100, 60, "m1 progress")
    for name in ("m2", "m3"):
        member = Member(
            broker.bootstrap_servers, topic, group, ordering, tmp_path / f"{name}.jsonl", delay
        )
        members.append(member)
        await member.ready()
    await wait_for(lambda: all(m.handled() for m in members), 90, "every member handles something")
    assert await first.stop(signal.SIGTERM) == 0  # one leaves mid-run
    acked = {(str(e.session_id), int(e.metadata["seq"])) for e in events}  # type: ignore[arg-type]
    await wait_for(lambda: acked <= set(total_handled(members)), 120, "all handled")
    for member in members[1:]:
        assert await member.stop(signal.SIGTERM) == 0
    everything = total_handled(members)
    assert acked - set(everything) == set()
    for member in members:
        per_session: dict[str, list[int]] = defaultdict(list)
        for session, seq in member.handled():
            per_session[session].append(seq)
        for session, seqs in per_session.items():
            assert seqs == sorted(seqs), f"{session} out of order in one member: {seqs}"
    duplicates = sum(n - 1 for n in Counter(everything).values() if n > 1)
    shares = [len(m.handled()) for m in members]
    print(
        f"{ordering}: {len(everything)} handled for {len(acked)} events by {shares}, {duplicates} duplicates"
    )
