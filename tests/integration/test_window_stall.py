"""A window processor frozen inside an open transaction: its successor's output stays exactly once.

The victim freezes itself (SIGSTOP) right after its output records reached the broker
inside a transaction it has not committed. A successor joins, takes every partition
once the victim's session expired, fences the victim's transactional ids (which aborts
the open transaction) and restores the windows from the changelog. Then the victim is
either killed or thawed; thawed, it finds its producers fenced, aborts, and rejoins.
The output, read read_committed, must hold every window once with its exact values.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka_support import produce
from window_helpers import as_windows, read_aggregates, stream, tumbling_oracle

from agent_events.broker.pytest_fixtures import NewTopic, RunningBroker
from tests.conftest import FaultLedger

pytestmark = [
    pytest.mark.needs("transactions"),
    pytest.mark.slow,
    pytest.mark.faults,
    pytest.mark.timeout(240),
]

HERE = Path(__file__).parent
SESSION_TIMEOUT_S = 6.0  # window_process.py's session_timeout_ms


class Process:
    """A window-processor process; stderr goes to a file so a failure can show it."""

    def __init__(self, script: str, args: list[str], log: Path) -> None:
        self.log = log
        with log.open("w") as err:
            self.proc = subprocess.Popen(
                [sys.executable, str(HERE / script), *args],
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
            )

    async def line(self, expected: str, deadline_s: float = 90) -> None:
        assert self.proc.stdout is not None
        got = await asyncio.wait_for(asyncio.to_thread(self.proc.stdout.readline), deadline_s)
        assert got.strip() == expected, (
            f"wanted {expected}, got {got!r}: {self.log.read_text()[-3000:]}"
        )

    def state(self) -> str:
        """The kernel's process state letter (``T``: stopped)."""
        stat = Path(f"/proc/{self.proc.pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0]

    def signal(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    async def stop(self, deadline_s: float = 60) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(asyncio.to_thread(self.proc.wait), deadline_s)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def processes() -> Iterator[list[Process]]:
    started: list[Process] = []
    yield started
    for process in started:
        process.kill()


@pytest.mark.parametrize("then", ["kill", "thaw"])
async def test_a_member_frozen_in_an_open_transaction_leaves_its_successor_exactly_once(
    broker: RunningBroker,
    new_topic: NewTopic,
    tmp_path: Path,
    processes: list[Process],
    then: str,
    fault_ledger: FaultLedger,
) -> None:
    bootstrap = broker.bootstrap_servers
    topic = await new_topic(partitions=3)
    group, output = f"{topic}-g", f"{topic}.out"
    events = stream(3_000, step_ms=200)  # 10 minutes of event time
    expected = tumbling_oracle(events, 60_000, 5_000)
    await produce(bootstrap, topic, events)
    trigger = tmp_path / "stall-now"
    victim = Process(
        "window_stall_process.py",
        [bootstrap, topic, group, output, "0.05", str(trigger)],
        tmp_path / "victim.log",
    )
    processes.append(victim)
    await victim.line("READY")
    await read_aggregates(bootstrap, output, until=lambda rows: len(rows) >= 10, settle_s=0)
    trigger.touch()
    await victim.line("STALLED")
    await asyncio.sleep(0.2)
    assert victim.state() == "T", "the victim did not stop inside its transaction"
    before = await read_aggregates(bootstrap, output, until=lambda rows: True, settle_s=0.5)
    assert len(before) < len(expected), "the stall came too late to test anything"

    successor = Process(
        "window_process.py", [bootstrap, topic, group, output], tmp_path / "successor.log"
    )
    processes.append(successor)
    await successor.line("READY")
    # The successor emits only once the victim's session expired and it owns the partitions.
    await read_aggregates(
        bootstrap, output, until=lambda rows: len(rows) > len(before), deadline_s=90, settle_s=0
    )
    if then == "kill":
        victim.kill()
    else:
        victim.signal(signal.SIGCONT)

    rows = await read_aggregates(
        bootstrap, output, until=lambda rows: len(rows) >= len(expected), deadline_s=120, settle_s=3
    )
    assert await successor.stop() == 0
    if then == "thaw":
        assert await victim.stop() == 0
    windows = as_windows(rows)
    fault_ledger(
        f"windows (counted in windows): member SIGSTOPped in an open transaction, then {then}",
        sent=len(expected),
        acknowledged=len(expected),
        consumed=len(rows),
        lost=sum(1 for w, v in expected.items() if windows.get(w) != v),
        duplicated=len(rows) - len(windows),
    )
    assert windows == expected
    print(f"{then}: {len(before)} windows before the stall, {len(rows)} in all, each once")
