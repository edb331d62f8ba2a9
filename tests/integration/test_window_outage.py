"""The broker goes away while a window processor prepares newly assigned partitions.

Preparing a partition talks to the broker (fence the previous owner, restore the
changelog, look up the committed or first offset). Before, a broker lost at that
moment raised out of the rebalance listener and stopped the member with a traceback;
now the partitions wait, paused and without a task, and are prepared again once the
broker is back, and every event is still aggregated.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from kafka_support import produce
from window_helpers import stream, wait_until

from agent_events.broker import create_topic
from agent_events.broker.kafka_cluster import KafkaCluster
from agent_events.consumers.windows import WindowProcessor

pytestmark = [pytest.mark.faults, pytest.mark.timeout(240)]


async def test_a_broker_lost_while_partitions_are_prepared_leaves_them_waiting_not_the_member_dead(
    tmp_path: Path,
) -> None:
    async with KafkaCluster.single(data_dir=tmp_path / "kafka") as cluster:
        bootstrap = cluster.bootstrap_servers
        (node,) = cluster.node_ids
        await create_topic(bootstrap, "agent.events", partitions=2)
        events = stream(400, step_ms=250)
        await produce(bootstrap, "agent.events", events)
        processor = WindowProcessor(
            bootstrap_servers=bootstrap,
            group_id="g",
            window="tumbling:60s",
            commit_interval_s=0.2,
            request_timeout_ms=3_000,
            connect_timeout_s=3,
            restore_deadline_s=3,
            session_timeout_ms=6_000,
            heartbeat_interval_ms=500,
        )
        prepare, prepared_with_the_broker_gone = processor._prepare, 0

        async def prepare_after_the_broker_died(tps: list[object]) -> None:
            nonlocal prepared_with_the_broker_gone
            if prepared_with_the_broker_gone == 0:
                await cluster.kill_node(node)
            if node not in cluster.running_node_ids:
                prepared_with_the_broker_gone += 1
            await prepare(tps)  # type: ignore[arg-type]

        processor._prepare = prepare_after_the_broker_died  # type: ignore[method-assign,assignment]
        async with processor:
            runner = asyncio.create_task(processor.run())
            await wait_until(
                lambda: bool(processor._unprepared), 60, "the partitions to wait for the broker"
            )
            assert not runner.done(), "the member stopped when the broker went away"
            await wait_until(
                lambda: prepared_with_the_broker_gone >= 2 or runner.done(),
                60,
                "a second preparation, at a later commit, with the broker still away",
            )
            assert not runner.done(), "the member stopped when a retried preparation failed"
            await cluster.restart_node(node)
            await wait_until(
                lambda: processor.metrics_snapshot().events >= len(events),
                120,
                "every event, once the broker is back",
            )
            processor.request_stop()
            await asyncio.wait_for(runner, 60)
        assert prepared_with_the_broker_gone >= 2
        assert not processor._unprepared
