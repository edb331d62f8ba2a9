"""``agent-events`` root and ``broker`` commands: user mistakes give one line and exit 2."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent_events import __version__
from agent_events.cli import main


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def _one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def test_version_prints_the_distribution_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"agent-events {__version__}"


def test_unknown_flag_exits_2_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["broker", "start", "--bogus"]) == 2
    assert "--bogus" in _one_error_line(capsys.readouterr().err)


def test_unknown_kind_exits_2_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["broker", "start", "--kind", "redpanda"]) == 2
    assert "--kind" in _one_error_line(capsys.readouterr().err)


def test_port_out_of_range_exits_2_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["broker", "start", "--port", "70000"]) == 2
    assert "--port" in _one_error_line(capsys.readouterr().err)


def test_stop_when_nothing_runs_exits_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["broker", "stop", "--data-dir", str(tmp_path)]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "no broker is running" in line
    assert "agent-events broker start" in line


def test_start_on_a_busy_port_exits_2_with_one_line(
    tmp_path: Path, busy_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "broker",
            "start",
            "--kind",
            "tansu",
            "--port",
            str(busy_port),
            "--data-dir",
            str(tmp_path),
        ]
    )
    assert code == 2
    assert f"port {busy_port}" in _one_error_line(capsys.readouterr().err)


def test_status_without_a_broker_exits_3_and_says_not_running(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["broker", "status", "--data-dir", str(tmp_path), "--json"]) == 3
    assert json.loads(capsys.readouterr().out)["running"] is False


def test_status_ignores_a_state_file_whose_pid_is_not_a_broker(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = {
        "kind": "kafka",
        "pid": os.getpid(),  # alive, but pytest, not kafka.Kafka
        "bootstrap_servers": "127.0.0.1:1",
        "port": 1,
        "controller_port": 2,
        "version": "4.1.1",
        "data_dir": str(tmp_path),
        "log_file": "x",
        "data_kept": True,
        "started_at": 0.0,
    }
    (tmp_path / "broker.json").write_text(json.dumps(state))
    assert main(["broker", "status", "--data-dir", str(tmp_path)]) == 3
    assert "no broker is running" in capsys.readouterr().out
    assert not (tmp_path / "broker.json").exists()
