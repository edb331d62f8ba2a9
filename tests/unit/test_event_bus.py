"""Behaviour of the in-process EventBus: order, isolation, bounds, threads, metrics."""

from __future__ import annotations

import asyncio
import threading
from enum import Enum

import pytest

from agent_events.agent_runtime.errors import (
    BusClosed,
    ConfigError,
    HandlerTimeout,
    InvalidEventError,
    QueueFull,
    SubscriptionError,
)
from agent_events.agent_runtime.event_bus import EventBus, EventType, SystemEvent


def make_event(i: int = 0, event_type: Enum = EventType.AGENT_STARTED) -> SystemEvent:
    return SystemEvent(event_type=event_type, agent_id="agent", session_id="s", metadata={"i": i})


class Recorder:
    """A handler that records the ``i`` of each event it sees."""

    def __init__(self) -> None:
        self.seen: list[int] = []

    async def __call__(self, event: SystemEvent) -> None:
        self.seen.append(int(event.metadata["i"]))  # type: ignore[arg-type]


class CustomEventType(Enum):
    USER_LOGIN = "user_login"
    PAYMENT_FAILED = "payment_failed"


async def test_every_subscriber_sees_events_in_publish_order() -> None:
    async with EventBus(max_queue_size=8) as bus:
        recorders = [Recorder() for _ in range(3)]
        await bus.subscribe(EventType.ANY, recorders[0])
        await bus.subscribe(EventType.AGENT_STARTED, recorders[1])
        await bus.subscribe(EventType.ANY, recorders[2])
        for i in range(200):
            await bus.publish(make_event(i))
        await bus.join()
    for recorder in recorders:
        assert recorder.seen == list(range(200))


async def test_concurrent_publishers_give_every_subscriber_the_same_order() -> None:
    async with EventBus(max_queue_size=4) as bus:
        slow, fast = Recorder(), Recorder()

        async def slow_handler(event: SystemEvent) -> None:
            await asyncio.sleep(0)
            await slow(event)

        await bus.subscribe(EventType.ANY, slow_handler)
        await bus.subscribe(EventType.ANY, fast)

        async def publisher(base: int) -> None:
            for i in range(50):
                await bus.publish(make_event(base + i))

        await asyncio.gather(publisher(0), publisher(1000), publisher(2000))
        await bus.join()
    assert len(fast.seen) == 150
    assert slow.seen == fast.seen
    for base in (0, 1000, 2000):
        mine = [i for i in fast.seen if base <= i < base + 1000]
        assert mine == list(range(base, base + 50))


async def test_handler_that_raises_does_not_affect_other_handlers_or_the_bus() -> None:
    async with EventBus() as bus:
        good = Recorder()

        async def broken(event: SystemEvent) -> None:
            raise RuntimeError("handler bug")

        await bus.subscribe(EventType.ANY, broken)
        await bus.subscribe(EventType.ANY, good)
        for i in range(10):
            await bus.publish(make_event(i))
        await bus.join()
        await bus.publish(make_event(10))
        await bus.join()
    assert good.seen == list(range(11))


async def test_hung_handler_is_cancelled_after_its_timeout_and_others_keep_flowing() -> None:
    release = asyncio.Event()
    async with EventBus(handler_timeout=0.2) as bus:
        fast = Recorder()
        three_seen = asyncio.Event()
        hung_calls = 0

        async def fast_handler(event: SystemEvent) -> None:
            await fast(event)
            if len(fast.seen) == 3:
                three_seen.set()

        async def hung(event: SystemEvent) -> None:
            nonlocal hung_calls
            hung_calls += 1
            await release.wait()

        await bus.subscribe(EventType.ANY, hung)
        await bus.subscribe(EventType.ANY, fast_handler)
        for i in range(3):
            await bus.publish(make_event(i))
        # The fast handler is done long before the hung one times out even once.
        async with asyncio.timeout(5):
            await three_seen.wait()
        assert hung_calls == 1
        async with asyncio.timeout(5):
            await bus.join()
        assert hung_calls == 3


async def test_dispatch_reports_each_handler_outcome_including_timeouts() -> None:
    async with EventBus(handler_timeout=0.1) as bus:
        good = Recorder()

        async def broken(event: SystemEvent) -> None:
            raise ValueError("bad input")

        async def hangs(event: SystemEvent) -> None:
            await asyncio.Event().wait()

        await bus.subscribe(EventType.AGENT_STARTED, good)
        await bus.subscribe(EventType.ANY, broken)
        await bus.subscribe(EventType.AGENT_STARTED, hangs)
        await bus.subscribe(EventType.AGENT_COMPLETED, good)
        result = await bus.dispatch(make_event(7))
    assert good.seen == [7]
    assert not result.ok
    by_name = {o.handler_name.rsplit(".", 1)[-1]: o for o in result.outcomes}
    assert len(result.outcomes) == 3
    assert by_name["Recorder"].ok
    assert isinstance(by_name["broken"].error, ValueError)
    assert isinstance(by_name["hangs"].error, HandlerTimeout)
    assert len(result.failures) == 2


async def test_dispatch_without_matching_handlers_is_ok() -> None:
    bus = EventBus()
    result = await bus.dispatch(make_event(1))
    assert result.ok
    assert result.outcomes == ()


async def test_full_queue_makes_publish_wait_and_never_exceeds_the_bound() -> None:
    gate = asyncio.Event()
    max_depth = 0
    async with EventBus(max_queue_size=5, enable_metrics=True) as bus:
        seen: list[int] = []

        async def gated(event: SystemEvent) -> None:
            await gate.wait()
            seen.append(int(event.metadata["i"]))  # type: ignore[arg-type]

        await bus.subscribe(EventType.ANY, gated, handler_timeout=None)

        async def publish_all() -> None:
            nonlocal max_depth
            for i in range(20):
                await bus.publish(make_event(i))
                snapshot = bus.get_metrics()
                assert snapshot is not None
                max_depth = max(max_depth, snapshot.queue_depth)

        publisher = asyncio.create_task(publish_all())
        await asyncio.sleep(0.05)
        assert not publisher.done(), "publish must wait while the queue is full"
        snapshot = bus.get_metrics()
        assert snapshot is not None
        assert snapshot.queue_depth == 5
        gate.set()
        async with asyncio.timeout(5):
            await publisher
            await bus.join()
    assert seen == list(range(20))
    assert max_depth <= 5


async def test_publish_sync_on_a_full_queue_raises_and_delivers_to_nobody() -> None:
    gate = asyncio.Event()
    async with EventBus(max_queue_size=2) as bus:
        blocked: list[int] = []
        free = Recorder()

        async def gated(event: SystemEvent) -> None:
            await gate.wait()
            blocked.append(int(event.metadata["i"]))  # type: ignore[arg-type]

        await bus.subscribe(EventType.ANY, gated, handler_timeout=None)
        await bus.subscribe(EventType.ANY, free)
        bus.publish_sync(make_event(0))
        await asyncio.sleep(0.01)  # the gated worker takes event 0 and waits
        bus.publish_sync(make_event(1))
        bus.publish_sync(make_event(2))
        with pytest.raises(QueueFull, match="full"):
            bus.publish_sync(make_event(3))
        gate.set()
        await bus.join()
    assert blocked == [0, 1, 2]
    assert free.seen == [0, 1, 2]


async def test_publish_sync_from_another_thread_reaches_handlers_in_order() -> None:
    async with EventBus() as bus:
        recorder = Recorder()
        await bus.subscribe(EventType.ANY, recorder)

        def worker() -> None:
            for i in range(100):
                bus.publish_sync(make_event(i))

        thread = threading.Thread(target=worker)
        thread.start()
        await asyncio.to_thread(thread.join)
        await bus.join()
    assert recorder.seen == list(range(100))


async def test_publish_sync_from_another_thread_raises_queue_full_in_that_thread() -> None:
    gate = asyncio.Event()
    errors: list[BaseException] = []
    async with EventBus(max_queue_size=1) as bus:

        async def gated(event: SystemEvent) -> None:
            await gate.wait()

        await bus.subscribe(EventType.ANY, gated, handler_timeout=None)

        def worker() -> None:
            for i in range(5):
                try:
                    bus.publish_sync(make_event(i))
                except QueueFull as exc:
                    errors.append(exc)

        thread = threading.Thread(target=worker)
        thread.start()
        await asyncio.to_thread(thread.join)
        gate.set()
        await bus.join()
    assert len(errors) >= 3


def test_publish_sync_without_a_running_loop_runs_handlers_before_returning() -> None:
    bus = EventBus()
    recorder = Recorder()
    asyncio.run(bus.subscribe(EventType.ANY, recorder))
    bus.publish_sync(make_event(1))
    assert recorder.seen == [1]
    bus.publish_sync(make_event(2))
    assert recorder.seen == [1, 2]


def test_bus_moves_to_a_new_loop_when_its_old_loop_has_finished() -> None:
    bus = EventBus()
    recorder = Recorder()
    asyncio.run(bus.subscribe(EventType.ANY, recorder))

    async def publish_and_wait() -> None:
        await bus.publish(make_event(5))
        await bus.join()

    asyncio.run(publish_and_wait())
    assert recorder.seen == [5]


async def test_unsubscribe_stops_new_deliveries_but_finishes_queued_ones() -> None:
    async with EventBus() as bus:
        recorder = Recorder()
        sub_id = await bus.subscribe(EventType.ANY, recorder)
        for i in range(5):
            await bus.publish(make_event(i))
        assert await bus.unsubscribe(sub_id) is True
        await bus.publish(make_event(99))
        await bus.join()
        assert await bus.unsubscribe(sub_id) is False
    assert recorder.seen == list(range(5))


async def test_unsubscribe_handler_removes_every_subscription_of_that_handler() -> None:
    async with EventBus() as bus:
        recorder, other = Recorder(), Recorder()
        await bus.subscribe(EventType.AGENT_STARTED, recorder)
        await bus.subscribe(EventType.AGENT_COMPLETED, recorder)
        await bus.subscribe(EventType.ANY, other)
        assert await bus.unsubscribe_handler(recorder) == 2
        assert bus.subscription_count == 1
        await bus.publish(make_event(1))
        await bus.publish(make_event(2, EventType.AGENT_COMPLETED))
        await bus.join()
    assert recorder.seen == []
    assert other.seen == [1, 2]


async def test_a_handler_may_unsubscribe_itself() -> None:
    async with EventBus() as bus:
        calls = 0
        sub_id = ""

        async def once(event: SystemEvent) -> None:
            nonlocal calls
            calls += 1
            await bus.unsubscribe(sub_id)

        sub_id = await bus.subscribe(EventType.ANY, once)
        await bus.publish(make_event(1))
        await bus.join()
        await bus.publish(make_event(2))
        await bus.join()
    assert calls == 1


async def test_type_subscription_gets_only_its_type_and_any_gets_all() -> None:
    async with EventBus() as bus:
        started, everything, custom = Recorder(), Recorder(), Recorder()
        await bus.subscribe(EventType.AGENT_STARTED, started)
        await bus.subscribe(EventType.ANY, everything)
        await bus.subscribe(CustomEventType.USER_LOGIN, custom)
        await bus.publish(make_event(1, EventType.AGENT_STARTED))
        await bus.publish(make_event(2, EventType.AGENT_COMPLETED))
        await bus.publish(make_event(3, CustomEventType.USER_LOGIN))
        await bus.publish(make_event(4, CustomEventType.PAYMENT_FAILED))
        await bus.join()
    assert started.seen == [1]
    assert everything.seen == [1, 2, 3, 4]
    assert custom.seen == [3]


async def test_publishing_any_is_refused() -> None:
    event = make_event(1).model_copy(update={"event_type": EventType.ANY})
    bus = EventBus()
    with pytest.raises(InvalidEventError, match="wildcard"):
        await bus.publish(event)
    with pytest.raises(InvalidEventError):
        bus.publish_sync(event)


async def test_subscribe_rejects_what_is_not_a_type_or_a_handler() -> None:
    bus = EventBus()
    with pytest.raises(SubscriptionError, match="event type"):
        await bus.subscribe("agent_started", Recorder())  # type: ignore[arg-type]
    with pytest.raises(SubscriptionError, match="callable"):
        await bus.subscribe(EventType.ANY, "not a handler")  # type: ignore[arg-type]


@pytest.mark.parametrize("size", [0, -1])
def test_unbounded_or_negative_queue_size_is_a_config_error(size: int) -> None:
    with pytest.raises(ConfigError, match="max_queue_size"):
        EventBus(max_queue_size=size)


async def test_stop_drains_queued_events_and_then_refuses_publishing() -> None:
    bus = EventBus()
    recorder = Recorder()
    await bus.start()
    await bus.subscribe(EventType.ANY, recorder)
    for i in range(50):
        await bus.publish(make_event(i))
    await bus.stop()
    assert recorder.seen == list(range(50))
    with pytest.raises(BusClosed):
        await bus.publish(make_event(50))
    await bus.start()
    await bus.publish(make_event(51))
    await bus.join()
    await bus.stop()
    assert recorder.seen[-1] == 51


async def test_sync_handlers_are_supported() -> None:
    seen: list[int] = []
    async with EventBus() as bus:
        await bus.subscribe(EventType.ANY, lambda e: seen.append(int(e.metadata["i"])))  # type: ignore[arg-type]
        await bus.publish(make_event(3))
        await bus.join()
    assert seen == [3]


async def test_metrics_count_published_handled_failed_and_latency() -> None:
    async with EventBus(enable_metrics=True) as bus:

        async def broken(event: SystemEvent) -> None:
            raise RuntimeError

        await bus.subscribe(EventType.ANY, Recorder())
        await bus.subscribe(EventType.AGENT_COMPLETED, broken)
        for i in range(4):
            await bus.publish(make_event(i))
        await bus.publish(make_event(9, EventType.AGENT_COMPLETED))
        await bus.join()
        snapshot = bus.get_metrics()
    assert snapshot is not None
    assert snapshot.published == {"agent_started": 4, "agent_completed": 1}
    recorder_name = "Recorder"
    assert snapshot.handled[("agent_started", recorder_name)] == 4
    assert snapshot.handled[("agent_completed", recorder_name)] == 1
    failed = {k: v for k, v in snapshot.failed.items() if k[1].endswith("broken")}
    assert list(failed.values()) == [1]
    assert snapshot.latency[recorder_name].count == 5
    assert snapshot.failed_total == 1
    assert snapshot.queue_depth == 0


async def test_disabled_metrics_keep_no_counters() -> None:
    bus = EventBus(enable_metrics=False)
    await bus.subscribe(EventType.ANY, Recorder())
    await bus.publish(make_event(1))
    await bus.join()
    assert bus.get_metrics() is None
    await bus.stop()


async def test_handler_publishing_into_its_own_full_queue_fails_instead_of_deadlocking() -> None:
    errors: list[BaseException] = []
    gate = asyncio.Event()
    async with EventBus(max_queue_size=1) as bus:

        async def echo(event: SystemEvent) -> None:
            if event.metadata.get("i") == 0:
                await gate.wait()
                try:
                    await bus.publish(make_event(100))
                except QueueFull as exc:
                    errors.append(exc)

        await bus.subscribe(EventType.ANY, echo, handler_timeout=None)
        await bus.publish(make_event(0))
        await asyncio.sleep(0.01)
        await bus.publish(make_event(1))  # fills the queue while event 0 is handled
        gate.set()
        async with asyncio.timeout(5):
            await bus.join()
    assert len(errors) == 1
    assert "deadlock" in str(errors[0])


async def test_unsubscribe_with_drain_returns_once_its_queued_events_are_handled() -> None:
    gate = asyncio.Event()
    async with EventBus() as bus:
        recorder = Recorder()

        async def gated(event: SystemEvent) -> None:
            await gate.wait()
            await recorder(event)

        sub_id = await bus.subscribe(EventType.ANY, gated)
        for i in range(5):
            await bus.publish(make_event(i))
        draining = asyncio.create_task(bus.unsubscribe(sub_id, drain=True))
        await asyncio.sleep(0)
        await bus.publish(make_event(99))  # published after: not for this subscription
        assert not draining.done()
        gate.set()
        async with asyncio.timeout(5):
            assert await draining is True
        assert recorder.seen == list(range(5))
