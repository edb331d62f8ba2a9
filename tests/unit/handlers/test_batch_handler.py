"""BatchEventHandler: flush on size, on interval, on close; no lost events; bounded failures."""

from __future__ import annotations

import asyncio

import pytest

from agent_events.agent_runtime.errors import ConfigError, QueueFull
from agent_events.agent_runtime.event_bus import EventBus, EventType, SystemEvent
from agent_events.consumers.handlers import BatchEventHandler


def event(i: int) -> SystemEvent:
    return SystemEvent(event_type=EventType.AGENT_STARTED, agent_id="a", metadata={"i": i})


def numbers(batch: list[SystemEvent]) -> list[int]:
    return [int(e.metadata["i"]) for e in batch]  # type: ignore[arg-type]


class Sink:
    """Records batches; fails the first ``failures`` calls."""

    def __init__(self, failures: int = 0) -> None:
        self.batches: list[list[int]] = []
        self.failures = failures
        self.calls = 0
        self.written = asyncio.Event()

    async def __call__(self, batch: list[SystemEvent]) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise ConnectionError("database down")
        self.batches.append(numbers(batch))
        self.written.set()


async def test_batch_is_processed_when_size_is_reached() -> None:
    sink = Sink()
    async with BatchEventHandler(sink, batch_size=3, flush_interval=60) as batcher:
        for i in range(7):
            await batcher.handle_event(event(i))
        assert sink.batches == [[0, 1, 2], [3, 4, 5]]
        assert batcher.pending == 1


async def test_batch_flushes_on_interval_when_size_not_reached() -> None:
    sink = Sink()
    async with BatchEventHandler(sink, batch_size=100, flush_interval=0.05) as batcher:
        await batcher(event(1))
        await batcher(event(2))
        async with asyncio.timeout(5):
            await sink.written.wait()
    assert sink.batches == [[1, 2]]


async def test_close_flushes_remaining_events() -> None:
    sink = Sink()
    batcher = BatchEventHandler(sink, batch_size=100, flush_interval=60)
    await batcher(event(1))
    await batcher.aclose()
    assert sink.batches == [[1]]


async def test_events_arriving_during_a_flush_are_kept_for_the_next_batch() -> None:
    release = asyncio.Event()
    batches: list[list[int]] = []

    async def slow_write(batch: list[SystemEvent]) -> None:
        await release.wait()
        batches.append(numbers(batch))

    async with asyncio.timeout(5):
        async with BatchEventHandler(slow_write, batch_size=2, flush_interval=60) as batcher:
            await batcher(event(0))
            flushing = asyncio.create_task(batcher(event(1)))  # fills the batch, flush blocks
            await asyncio.sleep(0)
            await batcher(event(2))  # arrives while the first batch is being written
            release.set()
            await flushing
    assert batches == [[0, 1], [2]]


async def test_failed_batch_is_retried_before_newer_events() -> None:
    sink = Sink(failures=1)
    async with BatchEventHandler(sink, batch_size=2, flush_interval=60) as batcher:
        await batcher(event(0))
        await batcher(event(1))  # first write fails; batch kept
        assert batcher.pending == 2
        await batcher(event(2))
        await batcher(event(3))  # flush retries [0, 1] first
    assert sink.batches == [[0, 1], [2, 3]]


async def test_batch_goes_to_on_error_after_its_last_attempt() -> None:
    handed: list[tuple[list[int], type[BaseException]]] = []

    def on_error(batch: list[SystemEvent], error: BaseException) -> None:
        handed.append((numbers(batch), type(error)))

    sink = Sink(failures=100)
    batcher = BatchEventHandler(
        sink, batch_size=2, flush_interval=60, max_batch_attempts=2, on_error=on_error
    )
    await batcher(event(0))
    await batcher(event(1))
    await batcher.flush()
    await batcher.aclose()
    assert handed == [([0, 1], ConnectionError)]
    assert (batcher.pending, batcher.failed_batches, sink.calls) == (0, 1, 2)


async def test_batch_without_on_error_is_dropped_and_counted_after_its_last_attempt() -> None:
    batcher = BatchEventHandler(Sink(failures=100), batch_size=5, flush_interval=60)
    for i in range(3):
        await batcher(event(i))
    await batcher.aclose()  # retries up to max_batch_attempts, then gives up
    assert (batcher.dropped, batcher.pending) == (3, 0)


async def test_buffer_is_bounded_when_the_sink_keeps_failing() -> None:
    batcher = BatchEventHandler(
        Sink(failures=1000),
        batch_size=2,
        flush_interval=60,
        max_batch_attempts=1000,
        max_buffered=4,
    )
    for i in range(4):
        await batcher(event(i))
    with pytest.raises(QueueFull, match="max_buffered"):
        await batcher(event(4))
    assert batcher.pending == 4


async def test_handler_subscribed_to_a_bus_flushes_on_close() -> None:
    sink = Sink()
    batcher = BatchEventHandler(sink, batch_size=100, flush_interval=60)
    async with EventBus() as bus:
        await bus.subscribe(EventType.ANY, batcher)
        for i in range(5):
            await bus.publish(event(i))
        await bus.join()
    await batcher.aclose()
    assert sink.batches == [[0, 1, 2, 3, 4]]


async def test_a_closed_batch_handler_refuses_events() -> None:
    batcher = BatchEventHandler(Sink(), flush_interval=60)
    await batcher.aclose()
    with pytest.raises(QueueFull, match="closed"):
        await batcher(event(0))


def test_flush_interval_must_be_positive() -> None:
    with pytest.raises(ConfigError):
        BatchEventHandler(Sink(), flush_interval=0)
