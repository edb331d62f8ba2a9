"""``agent-events broker start|status|stop`` run as real subprocesses, as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent_events.broker._process import free_ports, is_alive, stop_process_group
from agent_events.broker.kafka_node import read_cluster_id

pytestmark = pytest.mark.slow


def _cli(
    *args: str, timeout: float = 180.0, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "from agent_events.cli import main; raise SystemExit(main())",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=env,
    )


def _status(data_dir: Path) -> dict[str, object]:
    result = _cli("broker", "status", "--data-dir", str(data_dir), "--json")
    payload: dict[str, object] = json.loads(result.stdout)
    assert result.returncode == (0 if payload["running"] else 3), result.stderr
    return payload


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    """A broker data folder; whatever broker a failed test left running there is stopped."""
    folder = tmp_path / "broker"
    yield folder
    try:
        state = json.loads((folder / "broker.json").read_text())
    except (OSError, ValueError):
        return
    stop_process_group(int(state["pid"]), timeout=10)


def test_kafka_broker_starts_detached_reports_status_and_stops(data_dir: Path) -> None:
    port, controller_port = free_ports(2)
    started = _cli(
        "broker", "start", "--kind", "kafka", "--data-dir", str(data_dir),
        "--port", str(port), "--controller-port", str(controller_port),
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    assert f"127.0.0.1:{port}" in started.stdout

    status = _status(data_dir)
    assert status["running"] is True
    assert status["kind"] == "kafka"
    assert status["bootstrap_servers"] == f"127.0.0.1:{port}"
    pid = int(str(status["pid"]))
    assert is_alive(pid)

    stopped = _cli("broker", "stop", "--data-dir", str(data_dir))
    assert stopped.returncode == 0, stopped.stderr
    assert not is_alive(pid)
    assert _status(data_dir)["running"] is False


def test_kafka_broker_restart_reuses_its_formatted_storage(data_dir: Path) -> None:
    port, controller_port = free_ports(2)
    args = (
        "broker", "start", "--kind", "kafka", "--data-dir", str(data_dir),
        "--port", str(port), "--controller-port", str(controller_port),
    )  # fmt: skip
    assert _cli(*args).returncode == 0
    storage = data_dir / "kafka" / "node-1" / "data"
    cluster_id = read_cluster_id(storage)
    assert _cli("broker", "stop", "--data-dir", str(data_dir)).returncode == 0

    again = _cli(*args)
    assert again.returncode == 0, again.stderr
    assert cluster_id is not None
    assert read_cluster_id(storage) == cluster_id
    assert _cli("broker", "stop", "--data-dir", str(data_dir)).returncode == 0


def test_tansu_broker_starts_and_a_second_start_is_refused_with_one_line(data_dir: Path) -> None:
    (port,) = free_ports(1)
    args = ("broker", "start", "--kind", "tansu", "--data-dir", str(data_dir), "--port", str(port))
    assert _cli(*args).returncode == 0
    assert _status(data_dir)["kind"] == "tansu"

    second = _cli(*args)
    assert second.returncode == 2
    assert len(second.stderr.strip().splitlines()) == 1
    assert "already running" in second.stderr

    assert _cli("broker", "stop", "--data-dir", str(data_dir)).returncode == 0


def test_bad_argument_exits_2_with_one_line_and_no_traceback() -> None:
    result = _cli("broker", "start", "--kind", "zookeeper")
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_status_and_stop_without_data_dir_act_on_the_broker_started_elsewhere(
    data_dir: Path, tmp_path: Path
) -> None:
    # Its own cache (the record of started brokers) and default data folder.
    env = {
        **os.environ,
        "AGENT_EVENTS_CACHE_DIR": str(tmp_path / "cache"),
        "XDG_DATA_HOME": str(tmp_path / "xdg"),
    }
    (port,) = free_ports(1)
    started = _cli(
        "broker", "start", "--kind", "tansu", "--data-dir", str(data_dir), "--port", str(port),
        env=env,
    )  # fmt: skip
    assert started.returncode == 0, started.stderr

    status = _cli("broker", "status", "--json", env=env)
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["data_dir"] == str(data_dir.resolve())

    stopped = _cli("broker", "stop", env=env)
    assert stopped.returncode == 0, stopped.stderr
    assert f"data in {data_dir.resolve()}" in stopped.stdout
    assert _status(data_dir)["running"] is False
    assert _cli("broker", "status", env=env).returncode == 3
