"""The fence of a member that may have lost its group: stall detection and the per-record gate."""

from __future__ import annotations

import asyncio

from aiokafka.structs import TopicPartition
from test_consumer_parts import CollectingSink, config, event, record

from agent_events.agent_runtime.event_bus import EventBus, EventType, SystemEvent
from agent_events.consumers.member import StallWatch
from agent_events.consumers.processing import RecordProcessor
from agent_events.consumers.worker import PartitionWorker
from agent_events.schemas.codec import encode_event


async def test_a_loop_gap_longer_than_the_limit_is_reported_once() -> None:
    stalls: list[str] = []
    watch = StallWatch(0.2, stalls.append)
    watch.start()
    try:
        await asyncio.sleep(0.1)
        assert stalls == []
        watch._last -= 1.0  # as if the loop had been frozen for a second
        watch.check()
        watch.check()
        assert len(stalls) == 1
        assert "frozen" in stalls[0]
    finally:
        await watch.stop()


async def test_a_fenced_worker_lets_in_flight_records_finish_and_starts_no_other() -> None:
    """The record queued behind a running one is not started once the gate closes."""
    release = asyncio.Event()
    started: list[int] = []

    async def handler(e: SystemEvent) -> None:
        started.append(int(e.metadata["i"]))  # type: ignore[arg-type]
        await release.wait()

    bus = EventBus(handler_timeout=None)
    await bus.subscribe(EventType.ANY, handler)
    processor = RecordProcessor(bus, config(ordering="key"), CollectingSink())
    open_gate = True
    worker = PartitionWorker(
        TopicPartition("t", 0), processor, "key", 8, may_start=lambda: open_gate
    )
    records = [
        record(encode_event(event(i, f"s{i % 2}")), offset=i, key=f"s{i % 2}".encode())
        for i in range(6)
    ]
    worker.submit(records[:4])
    await asyncio.sleep(0.05)
    assert sorted(started) == [0, 1]  # one per session in flight, 2 and 3 queued behind
    open_gate = False
    worker.submit(records[4:])
    assert worker.fence() == 4  # not yet taken into a chain: the member fetches it again
    release.set()
    await worker.close(finish_queued=True, deadline_s=5)
    assert sorted(started) == [0, 1]
    assert worker.pending == 0
    assert worker.tracker.committable() == 2
    assert worker.tracker.first_pending() == 2
