"""``agent-events consume`` as real processes: scaling out, every service, bad input.

Three ``consume metrics`` processes in one group split the partitions and their
``/metrics`` totals add up to what was produced; every service command starts against
a real broker and stops on SIGTERM with exit 0; bad arguments and bad settings exit 2
with one line on stderr.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from kafka_support import produce
from prometheus_client.parser import text_string_to_metric_families

from agent_events.agent_runtime.events import EventType, SystemEvent
from agent_events.broker import create_topic
from agent_events.broker.kafka_cluster import KafkaCluster
from agent_events.broker.pytest_fixtures import NewTopic, RunningBroker
from agent_events.services import SERVICES

DEADLINE_S = 90.0
CLI = [sys.executable, "-c", "import sys; from agent_events.cli import main; sys.exit(main())"]


class ConsumeProcess:
    """One ``agent-events consume`` process; its stderr (JSON log lines) goes to a file."""

    def __init__(self, args: list[str], workdir: Path, name: str, env: dict[str, str]) -> None:
        self.stderr_path = workdir / f"{name}.stderr"
        self.stdout_path = workdir / f"{name}.stdout"
        with self.stderr_path.open("wb") as err, self.stdout_path.open("wb") as out:
            self.proc = subprocess.Popen(
                [*CLI, "consume", *args, "--metrics-port", "0", "--log-format", "json"],
                stdout=out,
                stderr=err,
                cwd=workdir,
                env={**os.environ, "AGENT_EVENTS_LAG_INTERVAL_S": "0.3", **env},
            )
        self.metrics_url: str | None = None

    def log_lines(self) -> list[dict[str, Any]]:
        lines = []
        for line in self.stderr_path.read_text().splitlines():
            with contextlib.suppress(json.JSONDecodeError):
                lines.append(json.loads(line))
        return lines

    async def started(self) -> str:
        """The metrics URL, once the process logged that it joined its group."""

        def found() -> bool:
            if self.proc.poll() is not None:
                pytest.fail(f"consume exited with {self.proc.returncode}: {self.stderr_tail()}")
            for line in self.log_lines():
                if line.get("metrics_url"):
                    self.metrics_url = str(line["metrics_url"])
                    return True
            return False

        await until(found, "the service to start")
        assert self.metrics_url is not None
        return self.metrics_url

    async def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        async with httpx.AsyncClient() as client:
            response = await client.get(f"{self.metrics_url}/metrics")
        assert response.status_code == 200
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(response.text)
            for s in family.samples
        }

    async def healthz(self) -> int:
        async with httpx.AsyncClient() as client:
            return (await client.get(f"{self.metrics_url}/healthz")).status_code

    async def terminate(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(asyncio.to_thread(self.proc.wait), DEADLINE_S)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stderr_tail(self) -> str:
        return self.stderr_path.read_text()[-3000:]


async def until(condition: Callable[[], bool], what: str, deadline_s: float = DEADLINE_S) -> None:
    try:
        async with asyncio.timeout(deadline_s):
            while not condition():  # noqa: ASYNC110 - other processes' files and endpoints
                await asyncio.sleep(0.1)
    except TimeoutError:
        pytest.fail(f"timed out after {deadline_s}s waiting for {what}")


def consumed(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> float:
    return sum(v for (n, _), v in samples.items() if n == "agent_events_events_consumed_total")


def owned_partitions(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> set[str]:
    return {dict(ls)["partition"] for (n, ls) in samples if n == "agent_events_consumer_lag"}


def completions(sessions: int, per_session: int) -> list[SystemEvent]:
    return [
        SystemEvent(
            event_type=EventType.AGENT_COMPLETED,
            agent_id=f"agent-{s % 3}",
            session_id=f"s{s}",
            execution_time_ms=10 * i,
        )
        for i in range(per_session)
        for s in range(sessions)
    ]


@pytest.mark.broker_kinds("kafka")  # Tansu takes 5-8 s per rebalance
async def test_three_metrics_processes_split_the_partitions_and_their_totals_add_up(
    broker: RunningBroker, new_topic: NewTopic, tmp_path: Path
) -> None:
    topic = await new_topic(partitions=6)
    args = ["metrics", "-b", broker.bootstrap_servers, "--topic", topic, "--group", f"{topic}-g"]
    members = [ConsumeProcess(args, tmp_path, f"m{i}", {}) for i in range(3)]
    try:
        for member in members:
            await member.started()

        async def partitions_split() -> bool:
            owned = [owned_partitions(await m.metrics()) for m in members]
            union = set().union(*owned)
            return all(owned) and union == {str(p) for p in range(6)} and sum(map(len, owned)) == 6

        await until_async(partitions_split, "the three members to split the six partitions")
        events = completions(sessions=60, per_session=10)
        await produce(broker.bootstrap_servers, topic, events)

        async def all_counted() -> bool:
            return sum([consumed(await m.metrics()) for m in members]) >= len(events)

        await until_async(all_counted, "every event counted by some member")
        per_member = [consumed(await m.metrics()) for m in members]
        assert sum(per_member) == len(events)
        assert all(count > 0 for count in per_member)
        assert [await m.terminate() for m in members] == [0, 0, 0]
        assert all(
            any(
                line.get("event", "").startswith("metrics summary (final)")
                for line in m.log_lines()
            )
            for m in members
        )
    finally:
        for member in members:
            member.kill()


async def until_async(condition: Callable[[], Any], what: str) -> None:
    """Like :func:`until` for a condition that is a coroutine (an HTTP scrape)."""
    try:
        async with asyncio.timeout(DEADLINE_S):
            while not await condition():  # noqa: ASYNC110 - scraping other processes
                await asyncio.sleep(0.2)
    except TimeoutError:
        pytest.fail(f"timed out after {DEADLINE_S}s waiting for {what}")


ROUTER_MODULE = "async def handle(event):\n    pass\n"


@pytest.mark.broker_kinds(
    "kafka"
)  # one Kafka run shows each command starts; Tansu is covered in-process
async def test_every_service_command_starts_handles_events_and_stops_on_sigterm(
    broker: RunningBroker, new_topic: NewTopic, tmp_path: Path
) -> None:
    topic = await new_topic(partitions=2)
    events = [
        *completions(sessions=2, per_session=1),
        SystemEvent(
            event_type=EventType.ERROR_OCCURRED, agent_id="a", session_id="s0", error_message="x"
        ),
    ]
    await produce(broker.bootstrap_servers, topic, events)
    (tmp_path / "my_handlers.py").write_text(ROUTER_MODULE)
    extra = {
        "store": ["--store-url", f"sqlite:///{tmp_path / 'store.db'}"],
        "tracing": ["--trace-db", str(tmp_path / "traces.db")],
        "router": ["--handler", "my_handlers:handle"],
    }
    names = ["metrics", "alerting", "logging", "tracing", "statistics", "store", "router"]
    # Every registered service is started here, but aggregate and sessions, which have their
    # own real-CLI tests (tests/integration/test_window_service.py, test_session_service.py):
    # a new service cannot be forgotten.
    assert set(SERVICES) == {*names, "aggregate", "sessions"}
    services = {
        name: ConsumeProcess(
            [name, "-b", broker.bootstrap_servers, "--topic", topic, *extra.get(name, [])],
            tmp_path,
            name,
            {"AGENT_EVENTS_GROUP_ID": f"{topic}-{name}"},
        )
        for name in names
    }
    try:
        for process in services.values():
            await process.started()
        for name, process in services.items():

            async def done(p: ConsumeProcess = process) -> bool:
                return consumed(await p.metrics()) >= len(events)

            await until_async(done, f"the {name} service to handle the events")
            assert await process.healthz() == 200, name
        codes = {name: await process.terminate() for name, process in services.items()}
        assert codes == dict.fromkeys(names, 0)
    finally:
        for process in services.values():
            process.kill()

    lines = [json.loads(line) for line in services["logging"].stdout_path.read_text().splitlines()]
    assert len(lines) == len(events)
    error_line = next(line for line in lines if line["level"] == "error")
    assert error_line["event_type"] == "error_occurred"
    assert error_line["session_id"] == "s0"
    assert error_line["topic"] == topic
    assert error_line["consumergroup"] == f"{topic}-logging"
    assert {"partition", "offset", "event_id", "agent_id", "timestamp"} <= set(error_line)


# -- bad input: no broker needed --------------------------------------------------------------


def run_cli(
    args: list[str], env: dict[str, str] | None = None, cwd: Path | None = None
) -> tuple[int, str]:
    done = subprocess.run(
        [*CLI, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        cwd=cwd,
    )
    return done.returncode, done.stderr


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (["consume", "nosuch"], {}, "unknown service 'nosuch'"),
        (["consume", "metrics", "-b", "no-port-here"], {}, "is not host:port"),
        (
            ["consume", "alerting"],
            {"AGENT_EVENTS_ALERTING__SLOW_THRESHOLD_MS": "slow"},
            "AGENT_EVENTS_ALERTING__SLOW_THRESHOLD_MS",
        ),
        (["consume", "metrics", "--metrics-port", "http"], {}, "--metrics-port"),
        (["consume", "metrics", "--metrics-port", "70000"], {}, "metrics_port"),
        (["consume", "metrics", "--no-such-flag"], {}, "--no-such-flag"),
        (["consume", "metrics", "--config", "missing.toml"], {}, "cannot read config file"),
        (["consume", "router"], {}, "needs at least one --handler"),
        (["consume", "router", "--handler", "not_a_module_here:h"], {}, "cannot import"),
        (["consume", "store", "--store-url", "mysql://x"], {}, "store.url"),
        (["consume", "alerting", "--webhook-url", "ftp://x"], {}, "webhook_url"),
    ],
    ids=[
        "unknown-service",
        "bad-bootstrap",
        "invalid-env-value",
        "flag-not-a-number",
        "port-out-of-range",
        "unknown-flag",
        "missing-config-file",
        "router-without-handler",
        "router-handler-not-importable",
        "unknown-store-url",
        "webhook-not-http",
    ],
)
def test_bad_arguments_and_settings_exit_2_with_one_line(
    args: list[str], env: dict[str, str], expected: str, tmp_path: Path
) -> None:
    code, stderr = run_cli(args, env, cwd=tmp_path)
    assert code == 2
    assert len(stderr.strip().splitlines()) == 1, stderr
    assert expected in stderr


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("bad.toml", "bootstrap_servers = [", "not valid TOML"),
        ("bad.yaml", "consumer: [unclosed", "not valid YAML"),
        ("typo.toml", 'bootstrap_serverz = "h:1"\n', "bootstrap_serverz"),
        ("wrong.yaml", "consumer:\n  max_retries: many\n", "consumer.max_retries"),
        ("settings.ini", "[x]\n", "unknown format"),
    ],
)
def test_a_bad_config_file_exits_2_naming_the_problem(
    name: str, content: str, expected: str, tmp_path: Path
) -> None:
    path = tmp_path / name
    path.write_text(content)
    code, stderr = run_cli(["consume", "metrics", "--config", str(path)], cwd=tmp_path)
    assert code == 2
    assert len(stderr.strip().splitlines()) == 1, stderr
    assert expected in stderr


def test_an_unreachable_broker_exits_2_after_the_connect_timeout(tmp_path: Path) -> None:
    code, stderr = run_cli(
        ["consume", "statistics", "-b", "127.0.0.1:1"],
        {"AGENT_EVENTS_CONNECT_TIMEOUT_S": "1"},
        cwd=tmp_path,
    )
    assert code == 2
    assert stderr.strip().splitlines()[-1].startswith("Error: ")
    assert "no Kafka broker answered at 127.0.0.1:1" in stderr.strip().splitlines()[-1]


@pytest.mark.faults
@pytest.mark.parametrize("service", ["metrics", "aggregate"])
async def test_sigterm_after_the_broker_died_exits_0_without_a_traceback(
    service: str, tmp_path: Path
) -> None:
    """The broker goes away under a running service, then the operator stops the service:
    it drains what it holds and exits 0 with log lines, not a traceback (aiokafka's fetcher
    used to re-raise the cancel of its own retrying fetch from ``stop()``: exit 1)."""
    async with KafkaCluster.single(data_dir=tmp_path / "kafka") as cluster:
        bootstrap = cluster.bootstrap_servers
        await create_topic(bootstrap, "agent.events", partitions=3)
        if service != "aggregate":  # a window commit with the broker gone waits: see DELIVERY.md
            await produce(bootstrap, "agent.events", completions(3, 5))
        member = ConsumeProcess([service, "-b", bootstrap], tmp_path, service, {})
        try:
            await member.started()
            await until(lambda: consumed_or_restored(member), "the service to take records")
            await cluster.kill_node(cluster.node_ids[0])
            await until(
                lambda: any(
                    "lost the connection" in str(x.get("event")) for x in member.log_lines()
                ),
                "the service to notice the broker is gone",
            )
            code = await member.terminate()
        finally:
            member.kill()
    uncaught = [x for x in member.stderr_path.read_text().splitlines() if x.startswith("Traceback")]
    assert not uncaught, member.stderr_tail()  # log lines are JSON; a crash is not
    assert code == 0, member.stderr_tail()


def consumed_or_restored(member: ConsumeProcess) -> bool:
    return any(
        "assigned" in str(x.get("event")) or "restored" in str(x.get("event"))
        for x in member.log_lines()
    )
