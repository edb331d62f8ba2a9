"""``broker status`` and ``broker stop`` without ``--data-dir`` act on the broker ``broker start``
last started, wherever its data is (a fake broker process stands in for a real one)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent_events.broker._process import is_alive, stop_process_group
from agent_events.broker.dev_broker import _remember, last_started
from agent_events.cli import main


@pytest.fixture(autouse=True)
def own_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No real broker, cache or default data folder of this machine is looked at."""
    monkeypatch.setenv("AGENT_EVENTS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))


@pytest.fixture
def fake_broker(tmp_path: Path) -> Iterator[Path]:
    """A process that looks like Tansu, recorded as started from its own data folder."""
    process = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(120)", "tansu"], start_new_session=True
    )
    data_dir = tmp_path / "elsewhere"
    data_dir.mkdir()
    state = {
        "kind": "tansu",
        "pid": process.pid,
        "bootstrap_servers": "127.0.0.1:1",
        "port": 1,
        "controller_port": None,
        "version": "tansu",
        "data_dir": str(data_dir),
        "log_file": str(data_dir / "tansu.log"),
        "data_kept": False,
        "started_at": time.time(),
    }
    (data_dir / "broker.json").write_text(json.dumps(state))
    _remember(data_dir, started=True)  # what `broker start --data-dir` records
    try:
        yield data_dir
    finally:
        if process.poll() is None:
            stop_process_group(process.pid, timeout=1)
        process.wait()


def test_status_without_data_dir_reports_the_broker_started_elsewhere(
    fake_broker: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["broker", "status", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["running"] is True
    assert payload["data_dir"] == str(fake_broker)


def test_stop_without_data_dir_stops_it_and_forgets_it(
    fake_broker: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pid = json.loads((fake_broker / "broker.json").read_text())["pid"]
    assert main(["broker", "stop", "--grace", "5"]) == 0
    assert f"data in {fake_broker}" in capsys.readouterr().out
    assert not is_alive(pid)
    assert last_started() is None
    assert main(["broker", "status"]) == 3  # now the default folder, where nothing runs


def test_an_explicit_data_dir_wins_over_the_last_started(
    fake_broker: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = tmp_path / "other"
    assert main(["broker", "status", "--data-dir", str(other), "--json"]) == 3
    assert json.loads(capsys.readouterr().out)["data_dir"] == str(other.resolve())


def test_a_broker_that_died_is_dropped_from_the_record(fake_broker: Path) -> None:
    pid = json.loads((fake_broker / "broker.json").read_text())["pid"]
    stop_process_group(pid, timeout=5)
    assert last_started() is None
