"""The shared worker: fast handlers run inline, a lagging one moves to its own worker.

No timings are asserted tightly: bounds are generous and most checks are on order.
"""

from __future__ import annotations

import asyncio
import contextvars

from agent_events.agent_runtime.event_bus import EventBus, EventType, SystemEvent

marker: contextvars.ContextVar[str | None] = contextvars.ContextVar("marker", default=None)


def make_event(i: int) -> SystemEvent:
    return SystemEvent(event_type=EventType.AGENT_STARTED, agent_id="a", metadata={"i": i})


def index(event: SystemEvent) -> int:
    return int(event.metadata["i"])  # type: ignore[arg-type]


async def test_a_lagging_subscriber_does_not_hold_up_the_others() -> None:
    gate = asyncio.Event()
    fast_seen: list[int] = []
    slow_seen: list[int] = []
    async with EventBus() as bus:

        async def slow(event: SystemEvent) -> None:
            await gate.wait()
            slow_seen.append(index(event))

        all_fast = asyncio.Event()

        async def fast(event: SystemEvent) -> None:
            fast_seen.append(index(event))
            if len(fast_seen) == 50:
                all_fast.set()

        await bus.subscribe(EventType.ANY, slow, handler_timeout=None)
        await bus.subscribe(EventType.ANY, fast)
        for i in range(50):
            await bus.publish(make_event(i))
        async with asyncio.timeout(5):  # generous: the fast one needs no gate
            await all_fast.wait()
        assert slow_seen == []
        gate.set()
        async with asyncio.timeout(5):
            await bus.join()
    assert fast_seen == list(range(50))
    assert slow_seen == list(range(50))


async def test_order_holds_when_a_subscriber_switches_between_inline_and_its_own_worker() -> None:
    seen: list[int] = []
    async with EventBus() as bus:

        async def sometimes_slow(event: SystemEvent) -> None:
            if index(event) % 7 == 0:  # suspends: moves off the shared worker
                await asyncio.sleep(0.001)
            elif index(event) % 5 == 0:
                await asyncio.sleep(0)
            seen.append(index(event))

        await bus.subscribe(EventType.ANY, sometimes_slow)
        for i in range(200):
            await bus.publish(make_event(i))
            if i % 13 == 0:
                await asyncio.sleep(0)  # let it catch up, so it goes back inline
        async with asyncio.timeout(10):
            await bus.join()
    assert seen == list(range(200))


async def test_concurrent_publishers_and_a_lagging_subscriber_keep_one_order() -> None:
    lagging: list[str] = []
    inline: list[str] = []
    async with EventBus(max_queue_size=4) as bus:

        async def lag(event: SystemEvent) -> None:
            await asyncio.sleep(0)
            lagging.append(event.agent_id)

        async def quick(event: SystemEvent) -> None:
            inline.append(event.agent_id)

        await bus.subscribe(EventType.ANY, lag)
        await bus.subscribe(EventType.ANY, quick)

        async def publisher(name: str) -> None:
            for i in range(30):
                await bus.publish(SystemEvent(event_type=EventType.CUSTOM, agent_id=f"{name}{i}"))

        async with asyncio.timeout(10):
            await asyncio.gather(publisher("a"), publisher("b"))
            await bus.join()
    assert lagging == inline
    assert len(inline) == 60


async def test_a_hung_handler_on_the_inline_path_times_out_without_stalling_the_others() -> None:
    fast_seen: list[int] = []
    async with EventBus(enable_metrics=True) as bus:

        async def hung(event: SystemEvent) -> None:
            await asyncio.Event().wait()

        three = asyncio.Event()

        async def fast(event: SystemEvent) -> None:
            fast_seen.append(index(event))
            if len(fast_seen) == 3:
                three.set()

        await bus.subscribe(EventType.ANY, hung, handler_timeout=0.5)
        await bus.subscribe(EventType.ANY, fast)
        for i in range(3):
            await bus.publish(make_event(i))
        async with asyncio.timeout(5):
            await three.wait()
        before = bus.get_metrics()
        assert before is not None
        assert before.failed_total == 0  # the fast one went first: no hung call timed out yet
        async with asyncio.timeout(10):
            await bus.join()
        snapshot = bus.get_metrics()
    assert snapshot is not None
    assert snapshot.failed_total == 3  # each call timed out
    assert fast_seen == [0, 1, 2]


async def test_a_handler_that_suspends_keeps_its_task_for_asyncio_timeout() -> None:
    outcomes: list[str] = []
    async with EventBus() as bus:

        async def bounded(event: SystemEvent) -> None:
            try:
                async with asyncio.timeout(0.01):
                    await asyncio.Event().wait()
            except TimeoutError:
                outcomes.append("timed out")

        async def other(event: SystemEvent) -> None:
            outcomes.append("other")

        await bus.subscribe(EventType.ANY, bounded, handler_timeout=5)
        await bus.subscribe(EventType.ANY, other)
        await bus.publish(make_event(0))
        async with asyncio.timeout(5):
            await bus.join()
        await bus.publish(make_event(1))  # the bus still serves after the inner timeout
        async with asyncio.timeout(5):
            await bus.join()
    assert sorted(outcomes) == ["other", "other", "timed out", "timed out"]


async def test_a_handler_that_raises_inline_affects_nobody_else() -> None:
    seen: list[int] = []
    async with EventBus() as bus:

        async def boom(event: SystemEvent) -> None:
            raise RuntimeError("boom")

        def sync_seen(event: SystemEvent) -> None:
            seen.append(index(event))

        await bus.subscribe(EventType.ANY, boom)
        await bus.subscribe(EventType.ANY, sync_seen)
        for i in range(5):
            await bus.publish(make_event(i))
        await bus.join()
    assert seen == list(range(5))


async def test_a_context_variable_left_set_inline_reaches_no_other_handler() -> None:
    seen: list[str | None] = []
    async with EventBus() as bus:

        async def writer(event: SystemEvent) -> None:
            marker.set("leaked")

        async def reader(event: SystemEvent) -> None:
            seen.append(marker.get())

        await bus.subscribe(EventType.ANY, writer)
        await bus.subscribe(EventType.ANY, reader)
        for i in range(3):
            await bus.publish(make_event(i))
        await bus.join()
    assert seen == [None, None, None]


async def test_unsubscribe_with_drain_waits_for_a_lagging_subscriber() -> None:
    gate = asyncio.Event()
    seen: list[int] = []
    async with EventBus() as bus:

        async def gated(event: SystemEvent) -> None:
            await gate.wait()
            seen.append(index(event))

        sub_id = await bus.subscribe(EventType.ANY, gated, handler_timeout=None)
        for i in range(4):
            await bus.publish(make_event(i))
        draining = asyncio.create_task(bus.unsubscribe(sub_id, drain=True))
        await asyncio.sleep(0.01)
        assert not draining.done()
        gate.set()
        async with asyncio.timeout(5):
            assert await draining is True
    assert seen == [0, 1, 2, 3]


async def test_a_handler_that_cancels_its_own_task_stalls_no_other_subscriber() -> None:
    """The cancel lands on the shared worker at its next await: a fresh one takes over."""
    seen: list[int] = []
    async with EventBus() as bus:

        async def rogue(event: SystemEvent) -> None:
            if index(event) == 3:
                task = asyncio.current_task()
                assert task is not None
                task.cancel()  # and returns without awaiting anything

        async def steady(event: SystemEvent) -> None:
            seen.append(index(event))

        await bus.subscribe(EventType.ANY, rogue)
        await bus.subscribe(EventType.ANY, steady)
        for i in range(10):
            await bus.publish(make_event(i))
            await asyncio.sleep(0)
        async with asyncio.timeout(5):
            await bus.join()
    assert seen == list(range(10))


async def test_wants_says_which_type_labels_reach_a_handler() -> None:
    async with EventBus() as bus:

        async def handler(event: SystemEvent) -> None:
            return None

        assert not bus.wants("agent_started")
        sub = await bus.subscribe(EventType.AGENT_COMPLETED, handler)
        assert bus.wants("agent_completed")
        assert not bus.wants("agent_started")
        any_sub = await bus.subscribe(EventType.ANY, handler)
        assert bus.wants("agent_started")
        await bus.unsubscribe(any_sub)
        await bus.unsubscribe(sub)
        assert not bus.wants("agent_completed")
