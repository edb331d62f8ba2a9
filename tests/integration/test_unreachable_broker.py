"""A command started against a broker that is not there says so in one line.

``agent-events consume metrics --bootstrap-servers 127.0.0.1:<closed port>`` used to print
a dozen to forty lines of aiokafka connection errors and our own retry logs, then blame
"the dead-letter producer". The user gets one line naming the address and the service
they started, and a non-zero exit without a traceback; the library's retry noise stays
at DEBUG.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

CLI = [sys.executable, "-c", "import sys; from agent_events.cli import main; sys.exit(main())"]
CONNECT_TIMEOUT_S = 2.0
DEADLINE_S = 60.0


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A local port that refuses connections: bound (so nobody else takes it), never listening."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    try:
        yield int(sock.getsockname()[1])
    finally:
        sock.close()


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_EVENTS_")}
    return subprocess.run(
        [*CLI, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=DEADLINE_S,
        check=False,
    )


@pytest.mark.parametrize("log_format", ["json", "console"])
def test_consume_against_a_closed_port_prints_one_line_naming_address_and_service(
    closed_port: int, tmp_path: Path, log_format: str
) -> None:
    address = f"127.0.0.1:{closed_port}"
    started = time.monotonic()
    result = _run(
        [
            "consume",
            "metrics",
            "--bootstrap-servers",
            address,
            "--connect-timeout",
            str(CONNECT_TIMEOUT_S),
            "--log-format",
            log_format,
        ],
        tmp_path,
    )
    took = time.monotonic() - started
    lines = result.stderr.splitlines()
    assert result.returncode != 0
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: agent-events consume metrics: no Kafka broker answered")
    assert address in lines[0]
    assert "dead-letter" not in lines[0]
    assert "Traceback" not in result.stderr
    assert took < CONNECT_TIMEOUT_S + 15, f"gave up after {took:.1f}s"


@pytest.mark.parametrize("command", [["topics", "list"], ["tail"], ["dlq", "list"]])
def test_every_tool_against_a_closed_port_prints_one_line_naming_the_command(
    closed_port: int, tmp_path: Path, command: list[str]
) -> None:
    address = f"127.0.0.1:{closed_port}"
    result = _run([*command, "-b", address, "--connect-timeout", "1"], tmp_path)
    lines = result.stderr.splitlines()
    assert result.returncode == 2
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"Error: agent-events {' '.join(command)}: no Kafka broker")
    assert address in lines[0]


def test_consume_at_debug_level_still_shows_the_retries(closed_port: int, tmp_path: Path) -> None:
    result = _run(
        [
            "consume",
            "metrics",
            "--bootstrap-servers",
            f"127.0.0.1:{closed_port}",
            "--connect-timeout",
            "1",
            "--log-level",
            "DEBUG",
            "--log-format",
            "json",
        ],
        tmp_path,
    )
    assert result.returncode != 0
    assert "retrying" in result.stderr
    assert "Unable connect to" in result.stderr


def test_connect_timeout_must_be_positive(tmp_path: Path) -> None:
    result = _run(["consume", "metrics", "--connect-timeout", "0"], tmp_path)
    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1, result.stderr


async def test_a_service_host_names_its_service_when_the_broker_is_unreachable(
    closed_port: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agent_events.services import ServiceHost, build_service
    from agent_events.settings import load_settings
    from agent_events.transport import BrokerUnreachable

    monkeypatch.chdir(tmp_path)
    address = f"127.0.0.1:{closed_port}"
    settings = load_settings({"bootstrap_servers": address, "connect_timeout_s": 0.5}, dotenv=None)
    host = ServiceHost(build_service("metrics", settings), settings)
    with pytest.raises(BrokerUnreachable) as caught:
        async with host:
            pytest.fail("the service started without a broker")
    message = str(caught.value)
    assert message.startswith("the metrics service (consumer group agent-events-metrics)")
    assert address in message
