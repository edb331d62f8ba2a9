"""Window processors as real processes: a SIGKILL mid-window, and a rebalance from 1 to 3.

Exactly-once is what is asserted (read_committed output, every window once, equal to an
uninterrupted run and to the oracle), so these tests need Kafka transactions; Tansu has
none and is skipped with the reason. The streams are in order per partition, so the
closed windows are a function of the events alone: any loss, duplicate or double
count after a crash or a rebalance shows up as a difference.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from kafka_support import produce
from window_helpers import (
    as_sessions,
    as_windows,
    read_aggregates,
    session_stream,
    session_summaries,
    stream,
    tumbling_oracle,
)

from agent_events.agent_runtime.events import SystemEvent
from agent_events.broker.pytest_fixtures import NewTopic, RunningBroker
from agent_events.consumers.windows import SessionSummaryCodec
from tests.conftest import FaultLedger

pytestmark = [pytest.mark.needs("transactions"), pytest.mark.slow, pytest.mark.timeout(180)]

SCRIPT = Path(__file__).with_name("window_process.py")


class Member:
    """One processor process; its stderr goes to a file so a failure can show it."""

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        group: str,
        output: str,
        log: Path,
        throttle: float = 0.0,
        kind: str = "tumbling",
    ) -> None:
        self.log = log
        self._stderr = log.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, str(SCRIPT), bootstrap, topic, group, output, str(throttle)],
            env={**os.environ, "WINDOW_KIND": kind},
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
        )

    async def ready(self, deadline_s: float = 60) -> None:
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(self.proc.stdout.readline), deadline_s)
        assert line.strip() == "READY", f"member did not start: {self.log.read_text()[-3000:]}"

    async def stop(self, deadline_s: float = 60) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(asyncio.to_thread(self.proc.wait), deadline_s)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._stderr.close()


@pytest.fixture
def members() -> Iterator[list[Member]]:
    started: list[Member] = []
    yield started
    for member in started:
        member.kill()


class Kind(NamedTuple):
    """A window kind's stream, oracle and reading of the output."""

    name: str
    events: list[SystemEvent]
    expected: dict[Any, Any]
    decode: Callable[[bytes], Any] | None
    identify: Callable[[list[Any]], dict[Any, Any]]


def tumbling_kind(events: int, partitions: int) -> Kind:
    stream_ = stream(events, step_ms=200)  # 10 minutes of event time per 3,000 events
    return Kind("tumbling", stream_, tumbling_oracle(stream_, 60_000, 5_000), None, as_windows)


def session_kind(events: int, partitions: int) -> Kind:
    # sessions of 12 events over 5.5 s, a new one every 2 s: 8 minutes per 3,000 events
    stream_ = session_stream(events // 12, stagger_ms=2_000)
    expected = session_summaries(stream_, 2_000, 1_000, partitions=partitions)
    return Kind("session", stream_, expected, SessionSummaryCodec().decode, as_sessions)


KINDS = pytest.mark.parametrize(
    "make_kind", [tumbling_kind, session_kind], ids=["tumbling", "session"]
)


@pytest.mark.faults
@KINDS
async def test_a_member_killed_mid_window_and_restarted_emits_what_an_uninterrupted_run_emits(
    broker: RunningBroker,
    new_topic: NewTopic,
    tmp_path: Path,
    members: list[Member],
    fault_ledger: FaultLedger,
    make_kind: Callable[[int, int], Kind],
) -> None:
    kind = make_kind(3_000, 3)
    bootstrap = broker.bootstrap_servers
    topic = await new_topic(partitions=3)
    expected = kind.expected
    await produce(bootstrap, topic, kind.events)

    def member(log: str, group: str, output: str, throttle: float = 0.0) -> Member:
        path = tmp_path / f"{log}.log"
        return Member(bootstrap, topic, f"{topic}-{group}", output, path, throttle, kind.name)

    steady = member("steady", "steady", f"{topic}.steady", 0.02)
    victim = member("victim", "g", f"{topic}.out", 0.05)
    members += [steady, victim]
    await asyncio.gather(steady.ready(), victim.ready())
    before_kill = await read_aggregates(
        bootstrap,
        f"{topic}.out",
        until=lambda rows: len(rows) >= 10,
        settle_s=0,
        decode=kind.decode,
    )
    victim.kill()  # SIGKILL: open transaction, windows half full
    assert len(before_kill) < len(expected), "the kill came too late to test anything"
    successor = member("successor", "g", f"{topic}.out")
    members.append(successor)
    await successor.ready()

    def complete(rows: list[object]) -> bool:
        return len(rows) >= len(expected)

    recovered, uninterrupted = await asyncio.gather(
        read_aggregates(
            bootstrap,
            f"{topic}.out",
            until=complete,
            deadline_s=120,
            settle_s=2,
            decode=kind.decode,
        ),
        read_aggregates(
            bootstrap,
            f"{topic}.steady",
            until=complete,
            deadline_s=120,
            settle_s=2,
            decode=kind.decode,
        ),
    )
    assert await successor.stop() == 0
    windows = kind.identify(recovered)
    fault_ledger(
        f"windows (counted in {kind.name} windows): member SIGKILLed inside a transaction",
        sent=len(expected),
        acknowledged=len(expected),
        consumed=len(recovered),
        lost=sum(1 for w, v in expected.items() if windows.get(w) != v),
        duplicated=len(recovered) - len(windows),
    )
    assert windows == kind.identify(uninterrupted) == expected


@KINDS
async def test_a_rebalance_from_one_to_three_members_loses_and_duplicates_nothing(
    broker: RunningBroker,
    new_topic: NewTopic,
    tmp_path: Path,
    members: list[Member],
    make_kind: Callable[[int, int], Kind],
) -> None:
    kind = make_kind(3_600, 6)
    bootstrap = broker.bootstrap_servers
    topic = await new_topic(partitions=6)
    events, expected = kind.events, kind.expected
    group, output = f"{topic}-g", f"{topic}.out"

    def member(log: str) -> Member:
        return Member(bootstrap, topic, group, output, tmp_path / log, 0.02, kind.name)

    first = member("m1.log")
    members.append(first)
    await first.ready()
    third = len(events) // 3
    await produce(bootstrap, topic, events[:third])
    await read_aggregates(
        bootstrap, output, until=lambda rows: len(rows) >= 5, settle_s=0, decode=kind.decode
    )
    joining = [member(f"m{i}.log") for i in (2, 3)]
    members += joining
    await asyncio.gather(*(m.ready() for m in joining))
    await produce(bootstrap, topic, events[third : 2 * third])  # while the group rebalances
    await produce(bootstrap, topic, events[2 * third :])
    rows = await read_aggregates(
        bootstrap,
        output,
        until=lambda rows: len(rows) >= len(expected),
        deadline_s=120,
        settle_s=2,
        decode=kind.decode,
    )
    codes = await asyncio.gather(*(m.stop() for m in (first, *joining)))
    assert codes == [0, 0, 0]
    assert kind.identify(rows) == expected
