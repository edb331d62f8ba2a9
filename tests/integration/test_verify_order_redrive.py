"""``agent-events verify-order`` after a routine re-drive: re-drives are not duplicates.

The user's path: our producer writes the topic, a service dead-letters some records,
``agent-events dlq redrive --execute`` sends them back (same key, value, sequence
headers, plus the re-drive mark), and ``agent-events verify-order`` checks the topic.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from kafka_support import produce

from agent_events.agent_runtime.event_bus import EventType, SystemEvent
from agent_events.broker.pytest_fixtures import NewTopic, RunningBroker
from agent_events.cli import main
from agent_events.consumers import ConsumerService

pytestmark = pytest.mark.timeout(120)


async def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = await asyncio.to_thread(main, list(args))
    return code, capsys.readouterr().out


async def test_verify_order_counts_redriven_records_as_redrives_not_duplicates(
    broker: RunningBroker, new_topic: NewTopic, capsys: pytest.CaptureFixture[str]
) -> None:
    topic = await new_topic(partitions=2)
    dlq = await new_topic(partitions=2, name=f"{topic}.dlq")
    events = [
        SystemEvent(event_type=EventType.AGENT_COMPLETED, agent_id="a", session_id=f"s{s}",
                    metadata={"seq": i})
        for i in range(5) for s in range(4)
    ]  # fmt: skip
    await produce(broker.bootstrap_servers, topic, events)

    async def store(event: SystemEvent) -> None:
        if event.metadata["seq"] == 3:
            raise ConnectionError("the store is down")

    async with ConsumerService(
        bootstrap_servers=broker.bootstrap_servers,
        topics=[topic],
        group_id="store",
        dlq_topic=dlq,
        max_retries=0,
        handlers=[store],
    ) as service:
        runner = asyncio.create_task(service.run())
        async with asyncio.timeout(60):
            while service.processor.stats.dead_lettered < 4:
                assert not runner.done(), runner
                await asyncio.sleep(0.05)
        service.request_stop()
        await runner

    b = ("-b", broker.bootstrap_servers)
    code, out = await run_cli(
        capsys, "dlq", "redrive", *b, "--dlq-topic", dlq, "--execute", "--json"
    )
    assert (code, json.loads(out)["sent"]) == (0, 4)
    code, out = await run_cli(capsys, "verify-order", *b, "-t", topic, "--json")
    report = json.loads(out)
    assert (report["records"], report["duplicates"], report.get("redrives")) == (24, 0, 4), report
    assert (code, report["ok"]) == (0, True)
