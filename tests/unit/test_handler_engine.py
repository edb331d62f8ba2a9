"""The one handler engine: publisher context on queued delivery, one timeout for both paths."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import threading

import pytest
import structlog

from agent_events.agent_runtime.errors import HandlerTimeout
from agent_events.agent_runtime.event_bus import EventBus, EventType, SystemEvent

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "test_request_id", default=None
)


def make_event(i: int = 0) -> SystemEvent:
    return SystemEvent(
        event_type=EventType.AGENT_STARTED, agent_id="agent", session_id="s", metadata={"i": i}
    )


async def test_handler_reached_by_publish_sees_the_publishers_contextvar_and_log_fields() -> None:
    seen: list[tuple[str | None, object]] = []

    async def handler(event: SystemEvent) -> None:
        await asyncio.sleep(0)  # the value must hold across the handler's own awaits
        seen.append((request_id.get(), structlog.contextvars.get_contextvars().get("run_id")))

    async with EventBus() as bus:
        await bus.subscribe(EventType.ANY, handler)  # subscribed before anything is bound
        token = request_id.set("req-1")
        with structlog.contextvars.bound_contextvars(run_id="run-1"):
            await bus.publish(make_event(1))
        request_id.reset(token)
        await bus.publish(make_event(2))
        await bus.join()
    assert seen == [("req-1", "run-1"), (None, None)]


async def test_sync_handler_reached_by_publish_sync_sees_the_publishers_context() -> None:
    seen: list[str | None] = []
    async with EventBus() as bus:
        await bus.subscribe(EventType.ANY, lambda event: seen.append(request_id.get()))
        token = request_id.set("sync-publisher")
        bus.publish_sync(make_event())
        request_id.reset(token)
        await bus.join()
    assert seen == ["sync-publisher"]


async def test_publish_sync_from_another_thread_carries_that_threads_context() -> None:
    seen: list[str | None] = []

    async def handler(event: SystemEvent) -> None:
        seen.append(request_id.get())

    async with EventBus() as bus:
        await bus.subscribe(EventType.ANY, handler)

        def worker() -> None:
            request_id.set("from-thread")
            bus.publish_sync(make_event())

        thread = threading.Thread(target=worker)
        thread.start()
        await asyncio.to_thread(thread.join)
        await bus.join()
    assert seen == ["from-thread"]


async def test_a_handlers_context_changes_reach_neither_other_handlers_nor_the_publisher() -> None:
    seen: list[str | None] = []

    async def writer(event: SystemEvent) -> None:
        request_id.set("set-by-handler")

    async def reader(event: SystemEvent) -> None:
        seen.append(request_id.get())

    async with EventBus() as bus:
        await bus.subscribe(EventType.ANY, writer)
        await bus.subscribe(EventType.ANY, reader)
        await bus.publish(make_event(1))
        with structlog.contextvars.bound_contextvars(run_id="run-2"):
            await bus.publish(make_event(2))
        await bus.join()
    assert request_id.get() is None
    assert seen == [None, None]


async def test_publishers_trace_span_is_current_in_the_handler() -> None:
    trace = pytest.importorskip("opentelemetry.trace")
    span_context = trace.SpanContext(
        trace_id=0x0AF7651916CD43DD8448EB211C80319C,
        span_id=0x00F067AA0BA902B7,
        is_remote=False,
        trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED),
    )
    seen: list[int] = []

    async def handler(event: SystemEvent) -> None:
        seen.append(trace.get_current_span().get_span_context().trace_id)

    async with EventBus() as bus:
        await bus.subscribe(EventType.ANY, handler)
        with trace.use_span(trace.NonRecordingSpan(span_context)):
            await bus.publish(make_event())
        await bus.join()
    assert seen == [span_context.trace_id]


@pytest.mark.parametrize("path", ["publish", "dispatch"])
async def test_handler_that_swallows_its_cancel_is_reported_as_timed_out(path: str) -> None:
    """Both paths share the watchdog: the timeout is reported even if the handler hides it."""
    async with EventBus(handler_timeout=0.05, enable_metrics=True) as bus:

        async def stubborn(event: SystemEvent) -> None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.Event().wait()

        await bus.subscribe(EventType.ANY, stubborn)
        async with asyncio.timeout(5):
            if path == "dispatch":
                result = await bus.dispatch(make_event())
                assert isinstance(result.outcomes[0].error, HandlerTimeout)
            else:
                await bus.publish(make_event())
                await bus.join()
        snapshot = bus.get_metrics()
    assert snapshot is not None
    assert snapshot.failed_total == 1
    assert [stats.count for stats in snapshot.latency.values()] == [1]


async def test_dispatch_counts_into_the_same_metrics_as_queued_delivery() -> None:
    async def handler(event: SystemEvent) -> None:
        return None

    async with EventBus(enable_metrics=True) as bus:
        await bus.subscribe(EventType.ANY, handler)
        await bus.publish(make_event(1))
        await bus.join()
        await bus.dispatch(make_event(2))
        snapshot = bus.get_metrics()
    assert snapshot is not None
    assert snapshot.handled_total == 2
    assert sum(stats.count for stats in snapshot.latency.values()) == 2


def test_hung_handler_times_out_on_each_temporary_loop_of_publish_sync() -> None:
    """The watchdog follows the loop the calls run on: here a new one per publish_sync."""
    bus = EventBus(handler_timeout=0.05)
    calls: list[int] = []

    async def hangs(event: SystemEvent) -> None:
        calls.append(1)
        await asyncio.Event().wait()

    asyncio.run(bus.subscribe(EventType.ANY, hangs))

    def publish(done: threading.Event) -> None:
        bus.publish_sync(make_event())
        done.set()

    for _ in range(2):
        done = threading.Event()
        thread = threading.Thread(target=publish, args=(done,))
        thread.start()
        assert done.wait(5), "publish_sync did not return: the hung handler was not cancelled"
        thread.join()
    assert calls == [1, 1]


class NoTruth:
    """A value whose ``==`` cannot be used as a bool (as a numpy array's)."""

    def __eq__(self, other: object) -> bool:
        raise ValueError("the truth value of this comparison is ambiguous")

    __hash__ = object.__hash__


async def test_publisher_context_with_values_that_refuse_comparison_is_carried() -> None:
    seen: list[object] = []
    value = NoTruth()
    var: contextvars.ContextVar[object] = contextvars.ContextVar("test_no_truth")

    async def handler(event: SystemEvent) -> None:
        seen.append(var.get(None))

    async with EventBus() as bus:
        await bus.subscribe(EventType.ANY, handler)
        var.set(value)
        await bus.publish(make_event(1))
        var.set(NoTruth())
        await bus.publish(make_event(2))
        await bus.join()
    assert seen[0] is value
    assert seen[1] is not value
