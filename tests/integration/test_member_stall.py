"""A member frozen past its session timeout must not start work once it wakes up.

Member A is frozen (SIGSTOP) longer than its session timeout while it has a record of
each of its sessions in flight; member B takes over every partition and handles those
sessions on. When A is thawed (SIGCONT) its in-flight handlers finish: the group
protocol cannot prevent that. What it must not do is *start* another record of a
session B already went on with: that would handle the record twice and break the
session's order. Each process writes a ``start`` line (as a handler begins) and a
``done`` line (as it returns), with its pid and the wall-clock time, so the files say
who started what when.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from kafka_support import produce
from test_consumer_processes import complete_json_lines, events_for, wait_for

from agent_events.agent_runtime.event_bus import SystemEvent
from agent_events.broker.pytest_fixtures import NewTopic, RunningBroker
from agent_events.consumers import ConsumerService
from tests.conftest import FaultLedger

pytestmark = [pytest.mark.broker_kinds("kafka"), pytest.mark.slow, pytest.mark.timeout(240)]

SCRIPT = Path(__file__).with_name("consumer_process.py")
SESSION_TIMEOUT_S = 6.0  # consumer_process.py's session_timeout_ms
FREEZE_S = 16.0
DELAY_S = 0.3


@dataclass(frozen=True)
class Line:
    phase: str
    session: str
    seq: int
    pid: int
    t: float
    rebalances: int
    """Revocations the member had seen when it wrote the line."""


class TracedMember:
    """A consumer process (per-key ordering) writing start and done lines."""

    def __init__(self, bootstrap: str, topic: str, group: str, out: Path) -> None:
        self.out = out
        self.log = out.with_suffix(".log")
        args = [bootstrap, topic, group, "key", str(out), str(DELAY_S), "--trace"]
        with self.log.open("w") as log:
            self.proc = subprocess.Popen(
                [sys.executable, str(SCRIPT), *args],
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
            )

    async def ready(self, deadline_s: float = 60) -> None:
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(self.proc.stdout.readline), deadline_s)
        assert line.strip() == "READY", f"member did not start: {line!r}"

    def lines(self) -> list[Line]:
        if not self.out.exists():
            return []
        return [
            Line(row["phase"], row["session"], row["seq"], row["pid"], row["t"], row["rebalances"])
            for row in complete_json_lines(self.out)
        ]

    def done(self) -> set[tuple[str, int]]:
        return {(x.session, x.seq) for x in self.lines() if x.phase == "done"}

    def signal(self, sig: signal.Signals) -> None:
        os.kill(self.proc.pid, sig)

    async def stop(self, deadline_s: float = 90) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(asyncio.to_thread(self.proc.wait), deadline_s)

    def kill_now(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)  # a stopped process cannot die of SIGKILL late
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def members() -> Iterator[list[TracedMember]]:
    started: list[TracedMember] = []
    yield started
    for member in started:
        member.kill_now()


def in_flight_at(lines: list[Line], t: float) -> set[tuple[str, int]]:
    """Records started before ``t`` and not done by then."""
    started = {(x.session, x.seq) for x in lines if x.phase == "start" and x.t < t}
    done = {(x.session, x.seq) for x in lines if x.phase == "done" and x.t < t}
    return started - done


def zombie_starts(a: list[Line], b: list[Line], resumed_at: float) -> list[Line]:
    """A's starts after it was thawed, before it rejoined the group (no revocation since the
    freeze), of a record B had already started, or gone past. After a rejoin, A starts from
    the committed offsets: a record B handled but could not commit is handled again, as
    after any rebalance (at least once), which is not the stall's doing."""
    frozen_rebalances = max((x.rebalances for x in a if x.t < resumed_at), default=0)
    b_starts: dict[str, list[Line]] = defaultdict(list)
    for x in b:
        if x.phase == "start":
            b_starts[x.session].append(x)
    return [
        x
        for x in a
        if x.phase == "start"
        and x.t >= resumed_at
        and x.rebalances == frozen_rebalances
        and any(y.seq >= x.seq and y.t < x.t for y in b_starts[x.session])
    ]


def order_breaks(lines: list[Line], excused: set[tuple[str, int, int]]) -> list[str]:
    """Sessions whose done sequence (both members, by time) goes backwards.

    ``excused`` (session, seq, pid) are the frozen member's in-flight records, which
    may finish after the new owner went on: the one exception the protocol allows.
    """
    by_session: dict[str, list[Line]] = defaultdict(list)
    for x in sorted(lines, key=lambda x: x.t):
        if x.phase == "done" and (x.session, x.seq, x.pid) not in excused:
            by_session[x.session].append(x)
    broken = []
    for session, done in by_session.items():
        seqs = [x.seq for x in done]
        if any(later < earlier for earlier, later in itertools.pairwise(seqs)):
            broken.append(f"{session}: {seqs}")
    return broken


@pytest.mark.faults
async def test_a_member_frozen_past_its_session_starts_nothing_its_successor_handled(
    broker: RunningBroker,
    new_topic: NewTopic,
    tmp_path: Path,
    members: list[TracedMember],
    fault_ledger: FaultLedger,
) -> None:
    bootstrap = broker.bootstrap_servers
    topic = await new_topic(partitions=6)
    group = f"{topic}-g"
    events = events_for(120, 60)  # 60 records of 0.3 s per session: 18 s of work per session
    await produce(bootstrap, topic, events)
    a = TracedMember(bootstrap, topic, group, tmp_path / "a.jsonl")
    members.append(a)
    await a.ready()
    b = TracedMember(bootstrap, topic, group, tmp_path / "b.jsonl")
    members.append(b)
    await b.ready()

    def both_settled() -> bool:
        """Both handle records after the rebalance that let B in."""
        b_done = [x.t for x in b.lines() if x.phase == "done"]
        since = [x for x in a.lines() if x.phase == "done" and b_done and x.t > min(b_done)]
        return len(b_done) >= 100 and len(since) >= 100

    await wait_for(both_settled, 90, "both members handle records")

    a.signal(signal.SIGSTOP)
    frozen_at = time.time()
    held = {session for session, _ in in_flight_at(a.lines(), frozen_at)}
    assert held, "nothing was in flight in the frozen member"

    def b_went_on() -> bool:
        after = {x.session for x in b.lines() if x.phase == "done" and x.t > frozen_at}
        return held <= after

    await wait_for(b_went_on, 60, "B handles the sessions A held")
    await asyncio.sleep(max(0.0, frozen_at + FREEZE_S - time.time()))
    resumed_at = time.time()
    a.signal(signal.SIGCONT)

    acked = {(str(e.session_id), int(e.metadata["seq"])) for e in events}  # type: ignore[arg-type]
    await wait_for(lambda: acked <= a.done() | b.done(), 150, "every event handled")
    assert await a.stop() == 0
    assert await b.stop() == 0

    a_lines, b_lines = a.lines(), b.lines()
    in_flight = in_flight_at(a_lines, frozen_at)
    zombies = zombie_starts(a_lines, b_lines, resumed_at)
    a_started_after = [x for x in a_lines if x.phase == "start" and x.t >= resumed_at]
    print(
        f"stall: {len(in_flight)} in flight in A when frozen, A started {len(a_started_after)} "
        f"records after it was thawed, {len(zombies)} of them B had already started or passed"
    )
    done_lines = [(x.session, x.seq) for x in a_lines + b_lines if x.phase == "done"]
    fault_ledger(
        "consumer service: member SIGSTOPped past its session timeout, then thawed",
        sent=len(events),
        acknowledged=len(acked),
        consumed=len(set(done_lines)),
        lost=len(acked - (a.done() | b.done())),
        duplicated=len(done_lines) - len(set(done_lines)),
    )
    assert zombies == [], f"A started records B had handled: {zombies[:5]}"
    assert acked - (a.done() | b.done()) == set()
    excused = {(s, q, a.proc.pid) for s, q in in_flight}
    assert order_breaks(a_lines + b_lines, excused) == []


async def test_a_fenced_member_the_group_still_knows_fetches_its_dropped_records_again(
    broker: RunningBroker, new_topic: NewTopic
) -> None:
    """The other way out of a fence: the coordinator accepts this member's heartbeat.

    Records dropped by the fence are fetched again from the first one not done; no
    rebalance happens, nothing is lost, and each session is first handled in order.
    """
    topic = await new_topic(partitions=2)
    events = events_for(10, 30)
    await produce(broker.bootstrap_servers, topic, events)
    handled: list[tuple[str, int]] = []

    async def handler(event: SystemEvent) -> None:
        await asyncio.sleep(0.02)
        handled.append((str(event.session_id), int(event.metadata["seq"])))  # type: ignore[arg-type]

    service = ConsumerService(
        bootstrap_servers=broker.bootstrap_servers,
        topics=[topic],
        group_id=f"{topic}-g",
        ordering="key",
        commit_interval_s=0.2,
        session_timeout_ms=6_000,
        heartbeat_interval_ms=500,
        handlers=[handler],
    )
    acked = {(str(e.session_id), int(e.metadata["seq"])) for e in events}  # type: ignore[arg-type]
    async with service:
        runner = asyncio.create_task(service.run())
        try:
            await wait_for(lambda: len(handled) >= 60, 60, "some records handled")
            rebalances = service.rebalances
            service._fence("fenced by the test")
            assert service.fenced
            await wait_for(lambda: not service.fenced, 30, "membership confirmed")
            await wait_for(lambda: acked <= set(handled), 60, "every event handled")
        finally:
            service.request_stop()
            await runner
    assert service.fences == 1
    assert service.rebalances == rebalances, "confirmed by the coordinator, not by a rebalance"
    first_seen: dict[str, list[int]] = defaultdict(list)
    seen: set[tuple[str, int]] = set()
    for session, seq in handled:
        if (session, seq) not in seen:
            seen.add((session, seq))
            first_seen[session].append(seq)
    assert all(seqs == sorted(seqs) for seqs in first_seen.values()), first_seen
