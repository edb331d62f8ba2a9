"""Every codec ``compression_type`` accepts works out of the box, on a real Apache Kafka.

``compression_type`` snappy, lz4 and zstd used to pass validation and then fail at
``start()`` with a bare ``RuntimeError`` (aiokafka needs cramjam, which was not
installed). Each codec is used the user's two ways, the library's settings and the CLI,
and read back; a codec the settings do not know, or whose library is missing, is refused
at load with one line and exit code 2.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from agent_events.agent_runtime.event_bus import EventType, SystemEvent
from agent_events.broker.pytest_fixtures import NewTopic, RunningBroker
from agent_events.producers import KafkaEventProducer
from agent_events.schemas.codec import decode_event
from agent_events.settings import load_settings
from agent_events.transport import KafkaConnectionConfig, consumer_client

CODECS = ["gzip", "snappy", "lz4", "zstd"]
CLI = [sys.executable, "-c", "import sys; from agent_events.cli import main; sys.exit(main())"]
EVENTS = 50
DEADLINE_S = 60.0

pytestmark = pytest.mark.broker_kinds("kafka")


def _events(n: int) -> list[SystemEvent]:
    return [
        SystemEvent(
            event_type=EventType.AGENT_COMPLETED,
            agent_id="agent-1",
            session_id=f"session-{i % 5}",
            metadata={"i": i, "text": "compressible " * 20},
        )
        for i in range(n)
    ]


async def _read_back(bootstrap: str, topic: str, expected: int) -> list[SystemEvent]:
    connection = KafkaConnectionConfig(bootstrap_servers=bootstrap)
    events: list[SystemEvent] = []
    async with consumer_client(
        connection, topic, auto_offset_reset="earliest", enable_auto_commit=False
    ) as consumer:
        while len(events) < expected:
            batch = await consumer.getmany(timeout_ms=10_000)
            assert batch, f"only {len(events)} of {expected} records arrived within 10 s"
            events.extend(decode_event(r.value) for recs in batch.values() for r in recs)
    return events


def _cli(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_EVENTS_")}
    return subprocess.run(
        [*CLI, *args],
        cwd=cwd,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=DEADLINE_S,
        check=False,
    )


@pytest.mark.parametrize("codec", CODECS)
async def test_every_accepted_codec_round_trips_through_the_producer_settings(
    codec: str, broker: RunningBroker, new_topic: NewTopic
) -> None:
    topic = await new_topic(partitions=3)
    settings = load_settings(
        {
            "bootstrap_servers": broker.bootstrap_servers,
            "topic": topic,
            "producer": {"compression_type": codec, "linger_ms": 20},
        },
        dotenv=None,
    )
    sent = _events(EVENTS)
    async with KafkaEventProducer(settings.producer_config()) as producer:
        for event in sent:
            await producer.send(event)
        await producer.flush()
    assert producer.stats.acknowledged == EVENTS
    received = await _read_back(broker.bootstrap_servers, topic, EVENTS)
    assert sorted(e.event_id for e in received) == sorted(e.event_id for e in sent)


@pytest.mark.parametrize("codec", CODECS)
async def test_every_accepted_codec_works_from_the_command_line(
    codec: str, broker: RunningBroker, new_topic: NewTopic, tmp_path: Path
) -> None:
    topic = await new_topic(partitions=3)
    lines = tmp_path / "events.jsonl"
    sent = _events(10)
    lines.write_text("".join(e.model_dump_json() + "\n" for e in sent))
    result = _cli(
        ["produce", str(lines), "-b", broker.bootstrap_servers, "-t", topic, "--json"],
        tmp_path,
        {"AGENT_EVENTS_PRODUCER__COMPRESSION_TYPE": codec},
    )
    assert result.returncode == 0, result.stderr
    received = await _read_back(broker.bootstrap_servers, topic, len(sent))
    assert sorted(e.event_id for e in received) == sorted(e.event_id for e in sent)


def test_an_unknown_codec_is_refused_at_load_in_one_line(tmp_path: Path) -> None:
    result = _cli(
        ["produce", "-", "-b", "127.0.0.1:9", "-t", "t"],
        tmp_path,
        {"AGENT_EVENTS_PRODUCER__COMPRESSION_TYPE": "brotli"},
    )
    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert "compression_type" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_codec_whose_library_is_missing_is_refused_at_load_in_one_line(tmp_path: Path) -> None:
    # An installation without cramjam: a stand-in module on the path that fails to import.
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "cramjam.py").write_text("raise ImportError('cramjam is not installed')\n")
    result = _cli(
        ["produce", "-", "-b", "127.0.0.1:9", "-t", "t"],
        tmp_path,
        {
            "AGENT_EVENTS_PRODUCER__COMPRESSION_TYPE": "zstd",
            "PYTHONPATH": os.pathsep.join([str(shadow), os.environ.get("PYTHONPATH", "")]),
        },
    )
    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert "cramjam" in result.stderr
    assert "Traceback" not in result.stderr
