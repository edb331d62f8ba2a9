"""Tansu started by our own code, and the guarantee that owned brokers die with their owner."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from agent_events.broker import TansuBroker
from agent_events.broker._process import is_alive, port_accepts
from agent_events.broker.readiness import metadata_broker_ids

_LEAVE_RUNNING = """
import asyncio
from agent_events.broker import TansuBroker

async def main():
    broker = TansuBroker()
    await broker.start()
    print(broker.pid, broker.log_file.parent, flush=True)  # no stop(): atexit cleans up

asyncio.run(main())
"""


async def test_tansu_serves_metadata_until_stopped() -> None:
    async with TansuBroker() as broker:
        assert await metadata_broker_ids(broker.bootstrap_servers)
        pid = broker.pid
        assert pid is not None
    assert not is_alive(pid)
    assert not await port_accepts("127.0.0.1", broker.port)


def test_owned_broker_is_killed_and_its_temp_dir_removed_when_python_exits() -> None:
    result = subprocess.run(
        [sys.executable, "-c", _LEAVE_RUNNING],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    pid_text, home = result.stdout.split()
    pid = int(pid_text)
    deadline = time.monotonic() + 10
    while is_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not is_alive(pid)
    assert not Path(home).exists()
