"""Health tells the truth through a real broker outage.

A fault-injection run found ``/healthz`` answering 200 through a 48 s broker outage, the lag
gauge frozen at its last values and ~94 aiokafka ERROR lines a second. Here a real
single-node Kafka (the project's own development broker) is stopped under a running
``agent-events consume logging`` process and started again: ``/readyz`` turns 503 within
seconds and back to 200 once the broker is back, ``/livez`` stays 200 throughout, the lag is
withdrawn and marked stale, and the outage costs a handful of log lines, not thousands.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest
from aiokafka.admin import NewTopic
from kafka_support import produce
from test_consume_cli import ConsumeProcess

import agent_events
from agent_events.agent_runtime.events import EventType, SystemEvent
from agent_events.broker._process import free_ports, stop_process_group
from agent_events.broker.dev_broker import DevBroker
from agent_events.broker.selection import kind_unavailable_reason
from agent_events.transport import KafkaConnectionConfig, admin_client

pytestmark = pytest.mark.slow

CLI = [sys.executable, "-c", "import sys; from agent_events.cli import main; sys.exit(main())"]
SOURCE_ROOT = Path(agent_events.__file__).resolve().parents[1]

UNREADY_WITHIN_S = 10.0  # after the broker process is gone
READY_AGAIN_WITHIN_S = 30.0  # after the restarted broker serves again
OUTAGE_S = 15.0
MAX_ERROR_LINES = 5
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture
def kafka_allowed(pytestconfig: pytest.Config) -> None:
    kinds = pytestconfig.getoption("--broker-kinds")
    if kinds is not None and "kafka" not in str(kinds).split(","):
        pytest.skip("needs an Apache Kafka broker (--broker-kinds leaves it out)")
    reason = kind_unavailable_reason("kafka")
    if reason is not None:
        pytest.skip(reason)


@pytest.fixture
async def dev_broker(tmp_path: Path, kafka_allowed: None) -> AsyncIterator[tuple[DevBroker, int]]:
    """A single-node Kafka of this test's own (its own data folder and ports)."""
    broker = DevBroker(tmp_path / "broker")
    port, controller_port = free_ports(2)
    await broker.start(kind="kafka", port=port, controller_port=controller_port)
    try:
        yield broker, controller_port
    finally:
        state = await asyncio.to_thread(broker.status)
        if state is not None:
            await asyncio.to_thread(stop_process_group, state.pid, timeout=15)


class ServiceProcess(ConsumeProcess):
    """An ``agent-events consume`` process importing this checkout, sampling lag every second."""

    def __init__(self, args: list[str], workdir: Path) -> None:
        path = os.pathsep.join(p for p in (str(SOURCE_ROOT), os.environ.get("PYTHONPATH")) if p)
        env = {"PYTHONPATH": path, "AGENT_EVENTS_LAG_INTERVAL_S": "1"}
        super().__init__(args, workdir, "service", env)

    @property
    def url(self) -> str:
        return self.metrics_url or ""

    async def get(self, path: str) -> tuple[int, str]:
        async with httpx.AsyncClient(timeout=5) as client:
            response = await client.get(self.url + path)
        return response.status_code, response.text

    def tail(self) -> str:
        return self.stderr_tail()


async def until(condition: Callable[[], Awaitable[bool]], what: str, deadline_s: float) -> float:
    """Poll ``condition`` until true; returns how long it took, fails after ``deadline_s``."""
    started = time.monotonic()
    try:
        async with asyncio.timeout(deadline_s):
            while not await condition():  # noqa: ASYNC110 - polling another process
                await asyncio.sleep(0.2)
    except TimeoutError:
        pytest.fail(f"timed out after {deadline_s:g}s waiting for {what}")
    return time.monotonic() - started


def lag_series(samples: Samples) -> list[float]:
    return [v for (name, _), v in samples.items() if name == "agent_events_consumer_lag"]


def stale(samples: Samples, group: str) -> float | None:
    return samples.get(("agent_events_consumer_lag_stale", (("consumergroup", group),)))


async def test_readiness_lag_and_logs_follow_a_real_broker_outage(
    dev_broker: tuple[DevBroker, int], tmp_path: Path
) -> None:
    broker, controller_port = dev_broker
    state = broker.status()
    assert state is not None
    bootstrap, port = state.bootstrap_servers, state.port
    topic, group = "health-events", "health-check"
    async with admin_client(KafkaConnectionConfig(bootstrap_servers=bootstrap)) as admin:
        await admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])
    events = [
        SystemEvent(event_type=EventType.AGENT_STARTED, agent_id="a", session_id=f"s{i}")
        for i in range(20)
    ]
    await produce(bootstrap, topic, events)

    service = ServiceProcess(
        ["logging", "-b", bootstrap, "--topic", topic, "--group", group], tmp_path
    )
    try:
        await service.started()

        async def ready() -> bool:
            return (await service.get("/readyz"))[0] == 200

        async def unready() -> bool:
            return (await service.get("/readyz"))[0] == 503

        async def lag_measured() -> bool:
            samples = await service.metrics()
            return bool(lag_series(samples)) and stale(samples, group) == 0

        await until(ready, "readiness with an assignment", 90)
        assert await service.get("/livez") == (200, "ok\n")
        await until(lag_measured, "consumer lag measured", 30)
        before_outage = len(service.log_lines())

        await broker.stop()
        unready_after = await until(
            unready, "/readyz 503 after the broker stopped", UNREADY_WITHIN_S
        )
        status, reason = await service.get("/readyz")
        assert status == 503
        assert "broker" in reason, reason
        assert reason.count("\n") == 1, reason

        async def lag_stale() -> bool:
            samples = await service.metrics()
            return not lag_series(samples) and stale(samples, group) == 1

        await until(lag_stale, "lag withdrawn and marked stale", 15)
        samples = await service.metrics()
        assert (
            "agent_events_consumer_lag_last_success_timestamp_seconds",
            (("consumergroup", group),),
        ) in samples

        live_answers = []
        outage_ends = time.monotonic() + OUTAGE_S - unready_after
        while time.monotonic() < outage_ends:
            live_answers.append(await service.get("/livez"))
            assert (await service.get("/readyz"))[0] == 503
            await asyncio.sleep(0.5)
        assert set(live_answers) == {(200, "ok\n")}

        during = service.log_lines()[before_outage:]
        errors = [line for line in during if line.get("level") == "error"]
        assert len(errors) <= MAX_ERROR_LINES, errors
        warnings = [line["event"] for line in during if line.get("level") == "warning"]
        assert any(
            w.startswith(f"lost the connection to the broker at 127.0.0.1:{port}; retrying")
            for w in warnings
        ), warnings

        await broker.start(kind="kafka", port=port, controller_port=controller_port)
        back_after = await until(
            ready, "/readyz 200 after the broker is back", READY_AGAIN_WITHIN_S
        )
        await until(lag_measured, "consumer lag measured again", 30)
        assert await service.get("/livez") == (200, "ok\n")

        async def back_logged() -> bool:
            return any(
                line.get("level") == "info"
                and line.get("event", "").startswith(
                    f"the broker at 127.0.0.1:{port} answers again"
                )
                for line in service.log_lines()[before_outage:]
            )

        await until(back_logged, "the INFO line saying the broker is back", 30)
        errors = [
            line for line in service.log_lines()[before_outage:] if line.get("level") == "error"
        ]
        assert len(errors) <= MAX_ERROR_LINES, errors
        assert await service.terminate() == 0, service.tail()
        print(f"unready after {unready_after:.1f}s, ready again {back_after:.1f}s after restart")
    finally:
        service.kill()
