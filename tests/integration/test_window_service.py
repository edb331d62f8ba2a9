"""``agent-events consume aggregate`` as a real process, on Apache Kafka and on Tansu.

The command takes the window options, writes the oracle's windows to its output topic,
serves the window metrics, picks exactly once where the broker has transactions (at
least once, said loudly, where it has not), and stops on SIGTERM with exit 0.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import BinaryIO

import pytest
from kafka_support import produce
from window_helpers import as_windows, read_aggregates, stream, tumbling_oracle

from agent_events.broker.capabilities import BrokerCapabilities
from agent_events.broker.pytest_fixtures import NewTopic, RunningBroker

pytestmark = pytest.mark.timeout(120)

CLI = [sys.executable, "-c", "import sys; from agent_events.cli import main; sys.exit(main())"]


def start(args: list[str], stderr: BinaryIO, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([*CLI, *args], stderr=stderr, env=env)


async def test_consume_aggregate_writes_the_windows_and_stops_cleanly(
    broker: RunningBroker,
    broker_capabilities: BrokerCapabilities,
    new_topic: NewTopic,
    tmp_path: Path,
) -> None:
    topic = await new_topic(partitions=2)
    events = stream(600, step_ms=500)
    expected = tumbling_oracle(events, 60_000, 10_000)
    await produce(broker.bootstrap_servers, topic, events)
    summary = tmp_path / "summary.json"
    args = [
        "consume", "aggregate", "-b", broker.bootstrap_servers, "--topic", topic,
        "--group", f"{topic}-g", "--window", "tumbling:60s", "--grace", "10s",
        "--output-topic", f"{topic}.aggregates", "--summary-file", str(summary),
        "--log-format", "json",
    ]  # fmt: skip
    env = {**os.environ, "AGENT_EVENTS_AGGREGATE__IDLE_SOURCE_AFTER_S": "1"}
    with (tmp_path / "stderr").open("wb") as stderr:
        process = start(args, stderr, env)
        try:
            rows = await read_aggregates(
                broker.bootstrap_servers,
                f"{topic}.aggregates",
                until=lambda rows: len(rows) >= len(expected),
                deadline_s=90,
            )
            process.send_signal(signal.SIGTERM)
            code = await asyncio.wait_for(asyncio.to_thread(process.wait), 60)
        finally:
            if process.poll() is None:
                process.kill()
    assert code == 0, (tmp_path / "stderr").read_text()[-3000:]
    assert as_windows(rows) == expected
    figures = json.loads(summary.read_text())
    assert figures["events"] == len(events)
    assert figures["window"] == "tumbling:1m"
    assert figures["guarantee"] == (
        "exactly_once" if broker_capabilities.supports("transactions") else "at_least_once"
    )
