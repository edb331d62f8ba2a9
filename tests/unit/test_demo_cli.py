"""``agent-events demo`` without a broker: what it says while starting one, its summary, and
what it leaves behind (the broker and the run itself are faked)."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any, Self

import pytest

import agent_events.cli.demo as demo_module
from agent_events.agent_runtime.errors import ConfigError
from agent_events.cli import main
from agent_events.cli._demo_view import DemoSnapshot, ServiceView, plain_summary
from agent_events.cli.demo import Kind, _start_broker


class FakeBroker:
    """Stands in for KafkaCluster / TansuBroker: an address, nothing started."""

    version = "4.1.1"
    bootstrap_servers = "127.0.0.1:1234"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None


def _start(kind: Kind, chosen: str, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    monkeypatch.setattr(demo_module, "resolve_kind", lambda _kind: chosen)
    monkeypatch.setattr(demo_module, "is_cached", lambda _version: False)
    monkeypatch.setattr(demo_module.KafkaCluster, "single", staticmethod(FakeBroker))
    monkeypatch.setattr(demo_module, "TansuBroker", FakeBroker)

    async def go() -> tuple[str, str]:
        async with AsyncExitStack() as stack:
            return await _start_broker(stack, kind)

    return asyncio.run(go())


def test_a_first_kafka_start_says_so_in_plain_lines_off_a_terminal(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bootstrap, label = _start(Kind.auto, "kafka", monkeypatch)
    err = capsys.readouterr().err
    assert (
        "starting Apache Kafka 4.1.1 (first run: fetching its jars with Maven, ~106 MB)..." in err
    )
    assert "Apache Kafka 4.1.1 ready at 127.0.0.1:1234 (" in err
    assert (bootstrap, label) == ("127.0.0.1:1234", "Apache Kafka 4.1.1 (local)")


def test_tansu_is_called_a_fallback_only_when_auto_chose_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert _start(Kind.tansu, "tansu", monkeypatch)[1] == "Tansu (local)"
    assert _start(Kind.auto, "tansu", monkeypatch)[1] == "Tansu (local, no JDK found)"


def _snapshot(existing: int = 0) -> DemoSnapshot:
    return DemoSnapshot(
        broker="Tansu (local) at 127.0.0.1:1234",
        topic="agent.events",
        partitions=6,
        elapsed_s=3.0,
        produced_by_type={"agent_started": 2606},
        acknowledged=2606,
        failed=0,
        executions=10,
        recent=[],
        services=[ServiceView("store", "g-store", existing + 2606, {"stored": existing + 2606})],
        alerts=[],
        existing=existing,
    )


def test_the_summary_counts_what_the_topic_held_before_the_run() -> None:
    lines = list(plain_summary(_snapshot(existing=3)))
    assert any("held 3 events before this run" in line for line in lines), lines
    assert "service store (group g-store): read 2609 events of the 2609 on the topic" in lines


@pytest.fixture
def fake_run(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[Any]:
    """The demo's run replaced by a finished one (or a failure put in the list)."""
    outcome: list[Any] = [_snapshot()]
    monkeypatch.setattr(demo_module.tempfile, "tempdir", str(tmp_path))

    def run(_main: object) -> DemoSnapshot:
        if isinstance(outcome[0], BaseException):
            raise outcome[0]
        snapshot: DemoSnapshot = outcome[0]
        return snapshot

    monkeypatch.setattr(demo_module, "run_until_signalled", run)
    return outcome


def _demo_dirs(tmp_path: Path) -> list[Path]:
    return sorted(tmp_path.glob("agent-events-demo-*"))


def test_a_successful_run_removes_its_temp_folder_and_does_not_point_to_it(
    fake_run: list[Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo", "--plain", "--duration", "1"]) == 0
    assert _demo_dirs(tmp_path) == []
    assert " are in " not in capsys.readouterr().out


def test_keep_keeps_the_temp_folder_and_says_where(
    fake_run: list[Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo", "--plain", "--duration", "1", "--keep"]) == 0
    (folder,) = _demo_dirs(tmp_path)
    assert (folder / "demo.log").is_file()
    assert f"logs and the event store are in {folder}" in capsys.readouterr().out


def test_a_failed_run_keeps_its_log_and_says_where(
    fake_run: list[Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_run[0] = ConfigError("the broker broke")
    assert main(["demo", "--plain", "--duration", "1"]) == 2
    (folder,) = _demo_dirs(tmp_path)
    err = capsys.readouterr().err
    assert f"its log is kept in {folder / 'demo.log'}" in err
    assert "the broker broke" in err
    assert "Traceback" not in err
