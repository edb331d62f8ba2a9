"""``agent-events consume sessions`` as a real process, on Apache Kafka and on Tansu.

The command is the README's ("### Agent sessions"), pointed at this test's broker and topics.

One summary per agent session reaches ``--output-topic``, equal to a brute-force
computation, including a session that an out-of-order event bridged from two; a reader
that knows only ``schemas/session_summary.avsc`` and fastavro decodes it; SIGTERM stops
the service with exit 0.
"""

from __future__ import annotations

import asyncio
import io
import json
import re
import shlex
import signal
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import BinaryIO

import fastavro
import pytest
from kafka_support import produce
from window_helpers import (
    START,
    as_sessions,
    read_aggregates,
    read_records,
    session_stream,
    session_summaries,
)

from agent_events.agent_runtime.events import EventType, SystemEvent
from agent_events.broker.pytest_fixtures import NewTopic, RunningBroker
from agent_events.consumers.windows import SessionSummaryCodec

pytestmark = pytest.mark.timeout(120)

CLI = [sys.executable, "-c", "import sys; from agent_events.cli import main; sys.exit(main())"]
SCHEMA = Path(__file__).resolve().parents[2] / "schemas" / "session_summary.avsc"
README = Path(__file__).resolve().parents[2] / "README.md"
README_BLOCK = re.compile(r"### Agent sessions\n\n```bash\n(.*?)\n```", re.S)


def start(args: list[str], stderr: BinaryIO) -> subprocess.Popen[bytes]:
    return subprocess.Popen(args, stderr=stderr)


def with_a_bridged_session(events: list[SystemEvent]) -> list[SystemEvent]:
    """``events`` plus session ``bridge``: events at 0, 8 and 22 s, then a late one at 15 s.

    With a 10 s gap, 0-8 and 22 are two sessions until the event at 15 s arrives and
    merges them (it is 7 s from each); the grace (20 s) still admits it.
    """
    base = START + timedelta(seconds=30)

    def at(seconds: int) -> SystemEvent:
        return SystemEvent(
            event_type=EventType.AGENT_COMPLETED,
            agent_id=f"bridge-agent-{seconds % 2}",
            session_id="bridge",
            timestamp=base + timedelta(seconds=seconds),
            execution_time_ms=seconds,
        )

    out = sorted([*events, at(0), at(8), at(22)], key=lambda e: e.timestamp)
    after = next(
        i
        for i, e in enumerate(out)
        if e.session_id == "bridge" and e.timestamp == base + timedelta(seconds=22)
    )
    out.insert(after + 1, at(15))
    return out


async def test_consume_sessions_writes_one_summary_per_session_and_stops_cleanly(
    broker: RunningBroker, new_topic: NewTopic, tmp_path: Path
) -> None:
    topic = await new_topic(partitions=1)
    events = with_a_bridged_session(session_stream(40, stagger_ms=4_000))
    expected = session_summaries(events, 10_000, 20_000, partitions=1)
    assert "bridge" in expected
    assert expected["bridge"]["event_count"] == 4
    await produce(broker.bootstrap_servers, topic, events)
    output = f"{topic}.sessions"
    # The README's command, with this test's broker and topics, and a shorter gap and grace
    # (given later on the command line, they win).
    readme = shlex.split(README_BLOCK.search(README.read_text()).group(1))  # type: ignore[union-attr]
    assert readme[:3] == ["agent-events", "consume", "sessions"]
    args = [
        *CLI, *readme[1:], "-b", broker.bootstrap_servers, "--topic", topic,
        "--group", f"{topic}-g", "--window", "session:10s", "--grace", "20s",
        "--output-topic", output, "--summary-file", str(tmp_path / "summary.json"),
    ]  # fmt: skip
    with (tmp_path / "stderr").open("wb") as stderr:
        process = start(args, stderr)
        try:
            rows = await read_aggregates(
                broker.bootstrap_servers,
                output,
                until=lambda rows: len(rows) >= len(expected),
                deadline_s=90,
                decode=SessionSummaryCodec().decode,
            )
            process.send_signal(signal.SIGTERM)
            code = await asyncio.wait_for(asyncio.to_thread(process.wait), 60)
        finally:
            if process.poll() is None:
                process.kill()
    assert code == 0, (tmp_path / "stderr").read_text()[-3000:]
    assert as_sessions(rows) == expected
    figures = json.loads((tmp_path / "summary.json").read_text())
    assert figures["window"] == "session:10s"
    assert figures["events"] == len(events)

    # A reader with only the .avsc file and fastavro: skip the 10-byte single-object header.
    (record, *_) = await read_records(broker.bootstrap_servers, output, 1)
    value: bytes = record.value  # type: ignore[attr-defined]
    schema = fastavro.parse_schema(json.loads(SCHEMA.read_text()))
    assert value[:2] == b"\xc3\x01"
    plain = fastavro.schemaless_reader(io.BytesIO(value[10:]), schema, None)
    assert isinstance(plain, dict)
    mine = expected[plain["session_id"]]
    assert plain["event_count"] == mine["event_count"]
    assert plain["agents"] == mine["agents"]
    assert plain["duration_ms"] == mine["end_ms"] - mine["start_ms"]
