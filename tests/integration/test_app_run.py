"""The README's ``App`` program runs as written: in process, and on Kafka with ``agent-events run``.

The block under "## Your own services: App" is a whole program (``billing.py``): run as is,
it handles events on an in-process ``EventBus``; saved as a module, ``agent-events run
billing:app`` runs the same handlers as a consumer-group member of a real broker, with the
metrics and health endpoints of every service, and stops on SIGTERM with exit 0.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
from pathlib import Path
from typing import Any

from kafka_support import produce
from test_consume_cli import CLI, ConsumeProcess, consumed, until, until_async
from test_readme_blocks import block_under, run_program
from window_helpers import as_windows, key_of, ms, read_aggregates, stream, tumbling_oracle

from agent_events import EventType, SystemEvent
from agent_events.broker.pytest_fixtures import NewTopic, RunningBroker

HEADING = "## Your own services: App"
SOURCE_ROOT = Path(__file__).resolve().parents[2]


class RunProcess(ConsumeProcess):
    """``agent-events run TARGET``: the consume helper's probes, the ``run`` command line."""

    def __init__(self, target: str, args: list[str], workdir: Path, name: str) -> None:
        self.stderr_path = workdir / f"{name}.stderr"
        self.stdout_path = workdir / f"{name}.stdout"
        # This checkout first, so the process runs the agent_events under test.
        path = [str(SOURCE_ROOT), os.environ.get("PYTHONPATH", "")]
        with self.stderr_path.open("wb") as err, self.stdout_path.open("wb") as out:
            self.proc = subprocess.Popen(
                [*CLI, "run", target, *args, "--metrics-port", "0", "--log-format", "json"],
                stdout=out,
                stderr=err,
                cwd=workdir,
                env={
                    **os.environ,
                    "PYTHONPATH": os.pathsep.join(p for p in path if p),
                    "AGENT_EVENTS_LAG_INTERVAL_S": "0.3",
                },
            )
        self.metrics_url = None

    def stdout_lines(self) -> list[str]:
        return self.stdout_path.read_text().splitlines()


async def test_readme_app_block_runs_in_process_as_written() -> None:
    status, out, err = await run_program(block_under(HEADING))

    assert status == 0, err
    assert out.splitlines() == [
        "ledger open",
        "researcher charged 12 cents",
        "researcher charged 3 cents",
        "{'researcher': 15}",
    ]


async def test_readme_app_runs_on_kafka_with_agent_events_run_and_stops_on_sigterm(
    broker: RunningBroker, new_topic: NewTopic, tmp_path: Path
) -> None:
    topic = await new_topic(partitions=2)
    (tmp_path / "billing.py").write_text(block_under(HEADING))
    args = ["-b", broker.bootstrap_servers, "--topic", topic, "--group", f"{topic}-g"]
    process = RunProcess("billing:app", args, tmp_path, "billing")
    try:
        await process.started()
        assert await process.healthz() == 200
        events = [
            SystemEvent(
                event_type=EventType.AGENT_COMPLETED,
                agent_id=f"agent-{i}",
                session_id=f"s{i}",
                execution_time_ms=100 * i,
            )
            for i in range(1, 5)
        ]
        events.append(SystemEvent(event_type=EventType.AGENT_STARTED, agent_id="not-charged"))
        await produce(broker.bootstrap_servers, topic, events)

        def charged() -> list[str]:
            return [line for line in process.stdout_lines() if " charged " in line]

        await until(lambda: len(charged()) >= 4, "the app to charge every completion")

        async def counted() -> bool:
            return consumed(await process.metrics()) >= 4

        await until_async(counted, "the service's metrics to count the handled events")
        assert await process.terminate() == 0, process.stderr_tail()
    finally:
        process.kill()

    assert process.stdout_lines()[0] == "ledger open"
    assert sorted(charged()) == [f"agent-{i} charged {i} cents" for i in range(1, 5)]
    assert any(
        line.get("event", "").startswith("billing summary (final)") for line in process.log_lines()
    ), process.stderr_tail()


WINDOW_APP = """
from agent_events import App, SystemEvent

app = App("rates")


@app.window("tumbling:60s", grace="10s", merge=lambda a, b: a + b)
def completed_ms(total: int, event: SystemEvent) -> int:
    return total + (event.execution_time_ms or 0)
"""


async def test_an_app_with_a_window_runs_as_a_window_processor_and_stops_on_sigterm(
    broker: RunningBroker, new_topic: NewTopic, tmp_path: Path
) -> None:
    """``agent-events run`` takes an App's window: the windows of the oracle, with the
    decorated reducer's value, on the output topic; SIGTERM ends it with exit 0."""
    topic = await new_topic(partitions=2)
    events = stream(600, step_ms=500)
    expected = tumbling_oracle(events, 60_000, 10_000)
    await produce(broker.bootstrap_servers, topic, events)
    (tmp_path / "rates.py").write_text(WINDOW_APP)
    output = "agent.events.aggregates"  # the default: one per broker, so read by our source
    args = ["-b", broker.bootstrap_servers, "--topic", topic, "--group", f"{topic}-g"]
    process = RunProcess("rates:app", args, tmp_path, "rates")
    try:
        await process.started()

        def ours(rows: list[Any]) -> list[Any]:
            return [r for r in rows if r.source == f"{topic}-g"]

        rows = ours(
            await read_aggregates(
                broker.bootstrap_servers,
                output,
                until=lambda rows: len(ours(rows)) >= len(expected),
                deadline_s=90,
            )
        )
        assert await process.terminate() == 0, process.stderr_tail()
    finally:
        process.kill()
    windows = as_windows(rows)
    assert {w: dataclasses.replace(v, reducers={}) for w, v in windows.items()} == expected
    for (key, start, end), values in windows.items():
        members = [e for e in events if key_of(e) == key and start <= ms(e) < end]
        assert values.reducers == {"completed_ms": sum(e.execution_time_ms or 0 for e in members)}
