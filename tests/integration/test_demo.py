"""``agent-events demo`` end to end on a real broker: what it prints adds up.

The demo's services read from Kafka what its agents published, so its report is checked
against itself: every service read every acknowledged event, the store holds each once,
the metrics service counted every completion, and the alerting service raised one
``high`` alert per ``error_occurred`` event.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest
from kafka_support import produce

from agent_events.agent_runtime.events import EventType, SystemEvent
from agent_events.broker import RunningBroker
from agent_events.cli import main

NewTopicFactory = Callable[..., Coroutine[Any, Any, str]]


def _number(pattern: str, text: str) -> int:
    match = re.search(pattern, text)
    assert match is not None, f"{pattern!r} not in:\n{text}"
    return int(match.group(1))


def test_demo_runs_for_its_duration_and_its_report_adds_up(
    broker: RunningBroker, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        ["demo", "--duration", "8", "--bootstrap-servers", broker.bootstrap_servers,
         "--plain", "--work-dir", str(tmp_path), "--seed", "7"]
    )  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 0, err
    assert re.search(r"^\[ +[\d.]+ s\] published \d+", out, re.M)  # progress while it runs
    acknowledged = _number(r"Kafka acknowledged (\d+)", out)
    assert acknowledged > 50
    assert _number(r"published (\d+) events \(", out) == acknowledged
    for service in ("metrics", "alerting", "store"):
        assert _number(rf"service {service} \(group [^)]+\): read (\d+) events", out) == (
            acknowledged
        )
    assert _number(r"store: (\d+) events stored", out) == acknowledged
    assert _number(r"store: \d+ events stored, (\d+) duplicates", out) == 0

    completions = _number(r"agent_completed (\d+)", out)
    runs = [int(n) for n in re.findall(r"metrics: \w+: (\d+) runs", out)]
    assert sum(runs) == completions
    errors = re.search(r"error_occurred (\d+)", out)
    high = re.search(r"alerts delivered: [^\n]*high (\d+)", out)
    assert (int(errors.group(1)) if errors else 0) == (int(high.group(1)) if high else 0)
    assert (tmp_path / "demo.log").is_file()
    assert (tmp_path / "store.db").is_file()


def test_demo_agents_only_writes_ordered_sessions_to_the_topic(
    broker: RunningBroker,
    new_topic: NewTopicFactory,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    topic = asyncio.run(new_topic(partitions=3))
    b = ("--bootstrap-servers", broker.bootstrap_servers)
    code = main(
        ["demo", "--agents-only", "--duration", "3", *b, "--topic", topic, "--plain",
         "--work-dir", str(tmp_path)]
    )  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 0, err
    acknowledged = _number(r"Kafka acknowledged (\d+)", out)
    assert "service " not in out  # no in-process services

    assert main(["verify-order", *b, "--topic", topic, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["records"] == acknowledged
    assert report["ok"] is True


@pytest.mark.broker_kinds("kafka")
def test_demo_stops_cleanly_on_sigterm(broker: RunningBroker, tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-c", "from agent_events.cli import main; raise SystemExit(main())",
         "demo", "--bootstrap-servers", broker.bootstrap_servers, "--plain",
         "--work-dir", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 60
        seen = ""
        while "services read" not in seen or not re.search(r"published [1-9]", seen):
            assert time.monotonic() < deadline, seen
            seen += process.stdout.readline()
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=90)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, err
    assert "Traceback" not in err
    acknowledged = _number(r"Kafka acknowledged (\d+)", out)
    assert _number(r"store: (\d+) events stored", out) == acknowledged


def test_demo_on_a_topic_with_events_waits_for_those_too(
    broker: RunningBroker,
    new_topic: NewTopicFactory,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    topic = asyncio.run(new_topic(partitions=3))
    before = [
        SystemEvent(event_type=EventType.AGENT_STARTED, agent_id="old", session_id=f"old-{i % 50}")
        for i in range(3000)
    ]
    asyncio.run(produce(broker.bootstrap_servers, topic, before))
    code = main(
        ["demo", "--duration", "1", "--bootstrap-servers", broker.bootstrap_servers,
         "--topic", topic, "--plain", "--work-dir", str(tmp_path)]
    )  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 0, err
    acknowledged = _number(r"Kafka acknowledged (\d+)", out)
    assert _number(r"held (\d+) events before this run", out) == len(before)
    on_topic = len(before) + acknowledged
    for service in ("metrics", "alerting", "store"):
        line = rf"service {service} \(group [^)]+\): read (\d+) events of the {on_topic} on"
        assert _number(line, out) == on_topic
    assert _number(r"store: (\d+) events stored", out) == on_topic
