"""The bus's cheap per-event paths keep every guarantee of the slow ones.

``dispatch`` reuses a subscriber's idle watchdog slot call after call; queued delivery
counts room queue-wide and runs handlers inline. These tests pin down that timeouts,
isolation, nesting, concurrency, bounds and metrics hold on those paths.
"""

from __future__ import annotations

import asyncio
from enum import Enum

import pytest

from agent_events.agent_runtime.errors import HandlerTimeout, QueueFull
from agent_events.agent_runtime.event_bus import (
    DispatchResult,
    EventBus,
    EventType,
    HandlerOutcome,
    SystemEvent,
)


def make_event(i: int = 0) -> SystemEvent:
    return SystemEvent(event_type=EventType.AGENT_STARTED, agent_id="agent", metadata={"i": i})


def number(event: SystemEvent) -> int:
    return int(event.metadata["i"])  # type: ignore[arg-type]


# ------------------------------------------------------------------ dispatch


async def test_dispatch_times_out_a_hung_call_after_many_quick_ones_on_the_same_subscriber() -> (
    None
):
    async with EventBus(handler_timeout=0.05) as bus:

        async def sometimes_hangs(event: SystemEvent) -> None:
            if number(event) == 1:
                await asyncio.Event().wait()

        await bus.subscribe(EventType.ANY, sometimes_hangs)
        async with asyncio.timeout(5):
            for _ in range(100):
                assert (await bus.dispatch(make_event(0))).ok
            hung = await bus.dispatch(make_event(1))
            after = await bus.dispatch(make_event(0))
    assert isinstance(hung.outcomes[0].error, HandlerTimeout)
    assert after.ok


async def test_dispatch_nested_in_a_handler_of_the_same_subscriber_keeps_the_outer_deadline() -> (
    None
):
    """The inner call must not take the outer call's busy slot: ending, it would clear the
    outer deadline and the hung outer call would never be cancelled."""
    async with EventBus(handler_timeout=0.05) as bus:
        inner: list[DispatchResult] = []

        async def nests_then_hangs(event: SystemEvent) -> None:
            if number(event) == 0:
                inner.append(await bus.dispatch(make_event(1)))
                await asyncio.Event().wait()

        await bus.subscribe(EventType.ANY, nests_then_hangs)
        async with asyncio.timeout(5):
            outer = await bus.dispatch(make_event(0))
    assert inner[0].ok
    assert isinstance(outer.outcomes[0].error, HandlerTimeout)


async def test_concurrent_dispatches_to_one_subscriber_time_out_only_the_hung_call() -> None:
    async with EventBus(handler_timeout=0.05) as bus:

        async def hangs_on_odd(event: SystemEvent) -> None:
            await asyncio.sleep(0)
            if number(event) % 2:
                await asyncio.Event().wait()

        await bus.subscribe(EventType.ANY, hangs_on_odd)
        async with asyncio.timeout(5):
            results = await asyncio.gather(*(bus.dispatch(make_event(i)) for i in range(6)))
    assert [r.ok for r in results] == [True, False] * 3
    assert all(isinstance(r.failures[0].error, HandlerTimeout) for r in results[1::2])


async def test_dispatch_cancelled_by_its_caller_cancels_and_leaves_the_next_call_unharmed() -> None:
    async with EventBus(handler_timeout=0.05) as bus:
        started = asyncio.Event()

        async def waits(event: SystemEvent) -> None:
            if number(event) == 1:
                started.set()
                await asyncio.Event().wait()

        await bus.subscribe(EventType.ANY, waits)
        call = asyncio.create_task(bus.dispatch(make_event(1)))
        await started.wait()
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        async with asyncio.timeout(5):
            assert (await bus.dispatch(make_event(0))).ok


async def test_dispatch_only_retries_the_named_subscriptions_and_counts_metrics() -> None:
    async with EventBus(enable_metrics=True) as bus:
        calls: list[str] = []

        async def good(event: SystemEvent) -> None:
            calls.append("good")

        async def flaky(event: SystemEvent) -> None:
            calls.append("flaky")
            raise ValueError("once")

        await bus.subscribe(EventType.ANY, good)
        flaky_id = await bus.subscribe(EventType.ANY, flaky)
        first = await bus.dispatch(make_event())
        retry = await bus.dispatch(make_event(), only={flaky_id})
        snapshot = bus.get_metrics()
    assert [o.subscription_id for o in first.failures] == [flaky_id]
    assert [o.subscription_id for o in retry.outcomes] == [flaky_id]
    assert calls == ["good", "flaky", "flaky"]
    assert snapshot is not None
    assert (snapshot.handled_total, snapshot.failed_total) == (1, 2)


def test_dispatch_result_works_out_ok_and_failures_once_and_compares_by_value() -> None:
    event = make_event()
    good = HandlerOutcome("sub-1", "good", None, 0.1)
    bad = HandlerOutcome("sub-2", "bad", ValueError("x"), 0.2)
    result = DispatchResult(event, (good, bad))
    assert not result.ok
    assert result.failures == (bad,)
    assert DispatchResult(event, (good,)).ok
    assert DispatchResult(event, (good,)).failures == ()
    assert DispatchResult(event, (good,)) == DispatchResult(event, (good,))
    assert good == HandlerOutcome("sub-1", "good", None, 0.1)
    assert "sub-2" in repr(result)


# ------------------------------------------------------------------ queued delivery


class Other(Enum):
    PING = "ping"


async def test_the_bound_is_per_subscriber_though_room_is_counted_per_event() -> None:
    """A full subscriber refuses its events; one of another type still takes its own."""
    async with EventBus(max_queue_size=3) as bus:
        seen: list[str] = []

        async def agent(event: SystemEvent) -> None:
            seen.append("agent")

        async def ping(event: SystemEvent) -> None:
            seen.append("ping")

        await bus.subscribe(EventType.AGENT_STARTED, agent)
        await bus.subscribe(Other.PING, ping)
        for i in range(3):  # no await between: nothing runs yet
            bus.publish_sync(make_event(i))
        with pytest.raises(QueueFull, match="agent"):
            bus.publish_sync(make_event(3))
        for _ in range(3):
            bus.publish_sync(SystemEvent(event_type=Other.PING, agent_id="agent"))
        await bus.join()
    assert seen == ["agent"] * 3 + ["ping"] * 3


async def test_queue_depth_counts_each_subscriber_own_backlog() -> None:
    async with EventBus(enable_metrics=True) as bus:

        async def agent(event: SystemEvent) -> None:
            return None

        async def anything(event: SystemEvent) -> None:
            return None

        await bus.subscribe(EventType.AGENT_STARTED, agent)
        await bus.subscribe(EventType.ANY, anything)
        for i in range(4):
            bus.publish_sync(make_event(i))
        bus.publish_sync(SystemEvent(event_type=EventType.AGENT_COMPLETED, agent_id="agent"))
        before = bus.get_metrics()
        await bus.join()
        after = bus.get_metrics()
    assert before is not None
    assert after is not None
    assert sorted(before.queue_depth_by_handler.values()) == [4, 5]
    assert before.queue_depth == 5
    assert after.queue_depth == 0
    assert after.handled_total == 9


async def test_events_queued_before_a_subscription_change_still_count_and_arrive() -> None:
    async with EventBus(max_queue_size=2) as bus:
        first: list[int] = []
        late: list[int] = []

        async def record_first(event: SystemEvent) -> None:
            first.append(number(event))

        async def record_late(event: SystemEvent) -> None:
            late.append(number(event))

        await bus.subscribe(EventType.ANY, record_first)
        bus.publish_sync(make_event(0))
        bus.publish_sync(make_event(1))
        await bus.subscribe(EventType.ANY, record_late)  # a new fan-out for this type
        with pytest.raises(QueueFull, match="record_first"):
            bus.publish_sync(make_event(2))
        await bus.join()
        bus.publish_sync(make_event(3))
        await bus.join()
    assert first == [0, 1, 3]
    assert late == [3]


async def test_a_lagging_subscriber_keeps_its_bound_while_the_others_run_inline() -> None:
    gate = asyncio.Event()
    async with EventBus(max_queue_size=4) as bus:
        fast: list[int] = []

        async def gated(event: SystemEvent) -> None:
            await gate.wait()

        async def quick(event: SystemEvent) -> None:
            fast.append(number(event))

        await bus.subscribe(EventType.ANY, gated, handler_timeout=None)
        await bus.subscribe(EventType.ANY, quick)
        for i in range(5):
            bus.publish_sync(make_event(i))
            await asyncio.sleep(0)  # the shared worker serves; gated lags
        with pytest.raises(QueueFull, match="gated"):  # one call running, four waiting
            bus.publish_sync(make_event(5))
        gate.set()
        async with asyncio.timeout(5):
            await bus.join()
    assert fast == list(range(5))


async def test_metrics_count_every_inline_call_and_its_latency() -> None:
    async with EventBus(enable_metrics=True) as bus:

        async def ok(event: SystemEvent) -> None:
            return None

        async def fails(event: SystemEvent) -> None:
            raise ValueError("no")

        await bus.subscribe(EventType.ANY, ok)
        await bus.subscribe(EventType.ANY, fails)
        for i in range(50):
            await bus.publish(make_event(i))
        await bus.publish(SystemEvent(event_type=EventType.AGENT_COMPLETED, agent_id="agent"))
        await bus.join()
        snapshot = bus.get_metrics()
    assert snapshot is not None
    assert (snapshot.handled_total, snapshot.failed_total) == (51, 51)
    assert sorted(s.count for s in snapshot.latency.values()) == [51, 51]
    assert all(s.min >= 0 for s in snapshot.latency.values())


def test_queue_depth_can_be_read_after_the_loop_has_ended() -> None:
    bus = EventBus(enable_metrics=True)

    async def publish_some() -> None:
        async def handler(event: SystemEvent) -> None:
            return None

        await bus.subscribe(EventType.ANY, handler)
        for i in range(3):
            await bus.publish(make_event(i))
        await bus.join()

    asyncio.run(publish_some())
    snapshot = bus.get_metrics()
    assert snapshot is not None
    assert (snapshot.queue_depth, snapshot.handled_total) == (0, 3)
