"""The buses :mod:`bench.inprocess` compares, behind one small adapter each.

Every adapter subscribes the same handler objects, publishes the same payload and
uses the same queue bound where the bus has one. Where a bus lacks a feature the
adapter does what a user of that bus would do, and says so in ``notes``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import importlib
import itertools
import os
import platform
import warnings
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from agent_events.agent_runtime.errors import QueueFull
from agent_events.agent_runtime.event_bus import EventBus, EventType, SystemEvent

__all__ = [
    "CONTENDERS",
    "FLOOR",
    "FLOORS",
    "FLOOR_ONE",
    "Contender",
    "ContenderSpec",
    "Handler",
    "machine_description",
]

Handler = Callable[[Any], Awaitable[None]]
QUEUE_BOUND = 10_000
_names = itertools.count(1)


def make_system_event(i: int) -> SystemEvent:
    """The one event shape every contender carries (bubus gets the same fields)."""
    return SystemEvent(
        event_type=EventType.AGENT_STARTED,
        agent_id="chatbot",
        user_id="user_123",
        session_id="sess_abc",
        metadata={"i": i, "model": "gpt-3.5-turbo", "task": "Hello"},
    )


class Contender:
    """One bus under test: subscribe handlers, publish, hand off from a thread, close."""

    can_publish_nowait = True

    def __init__(self, bound: int) -> None:
        self.bound = bound

    def make_event(self, i: int) -> Any:
        return make_system_event(i)

    async def open(self, handlers: Sequence[Handler]) -> None:
        raise NotImplementedError

    async def publish(self, event: Any) -> None:
        """Publish, waiting for room when the bus has a bound (backpressure)."""
        raise NotImplementedError

    def publish_nowait(self, event: Any) -> bool:
        """Publish without waiting; False when the bus refused the event."""
        raise NotImplementedError

    def publish_from_thread(self, loop: asyncio.AbstractEventLoop, event: Any) -> None:
        """Publish from a thread that is not the loop's; returns once the bus took it."""
        asyncio.run_coroutine_threadsafe(self.publish(event), loop).result()

    async def close(self) -> None:
        raise NotImplementedError


def _hand_off(loop: asyncio.AbstractEventLoop, deliver: Callable[[], object]) -> None:
    """Run ``deliver`` on the loop and wait for it: what ``publish_sync`` does."""
    done: concurrent.futures.Future[None] = concurrent.futures.Future()

    def run() -> None:
        try:
            deliver()
        except BaseException as exc:
            done.set_exception(exc)
        else:
            done.set_result(None)

    loop.call_soon_threadsafe(run)
    done.result()


class QueueFanout(Contender):
    """The floor: one bounded asyncio.Queue and one consumer task per subscriber."""

    async def open(self, handlers: Sequence[Handler]) -> None:
        self.queues: list[asyncio.Queue[Any]] = [asyncio.Queue(self.bound) for _ in handlers]
        self.tasks = [
            asyncio.create_task(self._consume(q, h))
            for q, h in zip(self.queues, handlers, strict=True)
        ]

    @staticmethod
    async def _consume(queue: asyncio.Queue[Any], handler: Handler) -> None:
        while True:
            event = await queue.get()
            await handler(event)
            queue.task_done()

    async def publish(self, event: Any) -> None:
        for queue in self.queues:
            if queue.full():
                await queue.put(event)
            else:
                queue.put_nowait(event)

    def publish_nowait(self, event: Any) -> bool:
        if any(q.full() for q in self.queues):
            return False
        for queue in self.queues:
            queue.put_nowait(event)
        return True

    def publish_from_thread(self, loop: asyncio.AbstractEventLoop, event: Any) -> None:
        _hand_off(loop, lambda: self.publish_nowait(event))

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


class OneDispatcher(Contender):
    """The cheapest correct floor: one bounded queue, one task awaiting the handlers in turn.

    What a hand-written fan-out does: one task switch per event, whatever the number
    of subscribers, but no isolation (a slow handler holds up all the others).
    """

    async def open(self, handlers: Sequence[Handler]) -> None:
        self.queue: asyncio.Queue[Any] = asyncio.Queue(self.bound)
        self.task = asyncio.create_task(self._consume(self.queue, tuple(handlers)))

    @staticmethod
    async def _consume(queue: asyncio.Queue[Any], handlers: tuple[Handler, ...]) -> None:
        while True:
            event = await queue.get()
            for handler in handlers:
                await handler(event)
            queue.task_done()

    async def publish(self, event: Any) -> None:
        if self.queue.full():
            await self.queue.put(event)
        else:
            self.queue.put_nowait(event)

    def publish_nowait(self, event: Any) -> bool:
        if self.queue.full():
            return False
        self.queue.put_nowait(event)
        return True

    def publish_from_thread(self, loop: asyncio.AbstractEventLoop, event: Any) -> None:
        _hand_off(loop, lambda: self.publish_nowait(event))

    async def close(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


class AgentEventsBus(Contender):
    """Our EventBus with its defaults (30 s handler timeout), ANY and type subscriptions mixed."""

    metrics = False

    async def open(self, handlers: Sequence[Handler]) -> None:
        self.bus = EventBus(max_queue_size=self.bound, enable_metrics=self.metrics)
        await self.bus.start()
        for k, handler in enumerate(handlers):
            event_type = EventType.ANY if k % 2 == 0 else EventType.AGENT_STARTED
            await self.bus.subscribe(event_type, handler)

    async def publish(self, event: Any) -> None:
        await self.bus.publish(event)

    def publish_nowait(self, event: Any) -> bool:
        try:
            self.bus.publish_sync(event)
        except QueueFull:
            return False
        return True

    def publish_from_thread(self, loop: asyncio.AbstractEventLoop, event: Any) -> None:
        self.bus.publish_sync(event)

    async def close(self) -> None:
        await self.bus.stop()


class AgentEventsBusWithMetrics(AgentEventsBus):
    metrics = True


class BubusBus(Contender):
    """bubus: pydantic events, one run loop per bus, at most 100 pending events.

    ``dispatch`` raises once 100 events are pending, so the adapter keeps at most
    ``WINDOW`` in flight and awaits the oldest (the backpressure bubus offers).
    """

    WINDOW = 40

    def __init__(self, bound: int) -> None:
        super().__init__(bound)
        import bubus  # type: ignore[import-untyped]

        self._bubus = bubus
        self._event_class = _bubus_event_class()

    def make_event(self, i: int) -> Any:
        source = make_system_event(i)
        return self._event_class(
            agent_id=source.agent_id,
            user_id=source.user_id,
            session_id=source.session_id,
            metadata=source.metadata,
        )

    async def open(self, handlers: Sequence[Handler]) -> None:
        self.bus = self._bubus.EventBus(name=f"bench_{next(_names)}")
        self.pending: deque[Any] = deque()
        with warnings.catch_warnings():  # same-named handlers are intended here
            warnings.simplefilter("ignore")
            for k, handler in enumerate(handlers):
                self.bus.on("*" if k % 2 == 0 else "AgentStarted", handler)

    async def publish(self, event: Any) -> None:
        while len(self.pending) >= self.WINDOW:
            await self.pending.popleft()
        self.pending.append(self.bus.dispatch(event))

    def publish_nowait(self, event: Any) -> bool:
        try:
            self.bus.dispatch(event)
        except (asyncio.QueueFull, RuntimeError):
            return False
        return True

    async def close(self) -> None:
        await self.bus.stop(clear=True)


_BUBUS_EVENT: Any = None


def _bubus_event_class() -> Any:
    """``AgentStarted``: a bubus event with SystemEvent's payload fields (built once)."""
    global _BUBUS_EVENT
    if _BUBUS_EVENT is None:
        import bubus
        from pydantic import Field

        class AgentStarted(bubus.BaseEvent):  # type: ignore[misc]
            agent_id: str
            user_id: str | None = None
            session_id: str | None = None
            metadata: dict[str, Any] = Field(default_factory=dict)

        _BUBUS_EVENT = AgentStarted
    return _BUBUS_EVENT


class PyeeEmitter(Contender):
    """pyee's AsyncIOEventEmitter: ``emit`` starts one task per handler, no bound.

    With no backpressure a publisher never yields, so the adapter yields once per
    ``bound`` pending handler calls: the same bound the queued buses get.
    """

    async def open(self, handlers: Sequence[Handler]) -> None:
        from pyee.asyncio import AsyncIOEventEmitter

        self.emitter = AsyncIOEventEmitter()
        for handler in handlers:
            self.emitter.on("agent_started", handler)
        self.yield_every = max(1, self.bound // max(1, len(handlers)))
        self.emitted = 0

    async def publish(self, event: Any) -> None:
        self.emitter.emit("agent_started", event)
        self.emitted += 1
        if self.emitted % self.yield_every == 0:
            await asyncio.sleep(0)

    def publish_nowait(self, event: Any) -> bool:
        self.emitter.emit("agent_started", event)
        return True

    def publish_from_thread(self, loop: asyncio.AbstractEventLoop, event: Any) -> None:
        _hand_off(loop, lambda: self.emitter.emit("agent_started", event))

    async def close(self) -> None:
        self.emitter.remove_all_listeners()


class BlinkerSignal(Contender):
    """blinker ``send_async``: the publisher awaits each receiver in turn, no queue.

    The event is sent as the signal's ``sender``, so receivers are called as
    ``handler(event)``, exactly like the others.
    """

    can_publish_nowait = False

    async def open(self, handlers: Sequence[Handler]) -> None:
        import blinker

        self.signal = blinker.Signal("agent_started")
        for handler in handlers:
            self.signal.connect(handler, weak=False)

    async def publish(self, event: Any) -> None:
        await self.signal.send_async(event)

    def publish_nowait(self, event: Any) -> bool:
        raise NotImplementedError("blinker has no non-blocking async send")

    async def close(self) -> None:
        self.signal.receivers.clear()


@dataclass(frozen=True)
class ContenderSpec:
    """How to build a contender, and what the report says about it."""

    name: str
    factory: Callable[[int], Contender]
    requires: str | None = None
    notes: str = ""
    max_events: int | None = None
    in_bounded_table: bool = True
    default_bound: int = QUEUE_BOUND

    def build(self, bound: int) -> Contender:
        return self.factory(bound)

    def events_for(self, wanted: int) -> int:
        """Very slow buses run fewer events (the rate, not the count, is reported)."""
        if self.max_events is None:
            return wanted
        return max(min(wanted, 50), min(wanted // 20, self.max_events))

    def unavailable_reason(self) -> str | None:
        if self.requires is None:
            return None
        try:
            importlib.import_module(self.requires)
        except ImportError as exc:
            return f"not installed ({exc}); pip install 'agent-events[bench]'"
        return None

    @property
    def version(self) -> str:
        if self.requires is None:
            return ""
        try:
            return metadata.version(self.requires)
        except metadata.PackageNotFoundError:
            return "?"


FLOOR = "asyncio.Queue fan-out (floor)"
FLOOR_ONE = "floor-one-dispatcher"
FLOORS = (FLOOR, FLOOR_ONE)
OURS = "agent-events EventBus"
OURS_METRICS = "agent-events EventBus, metrics on"

CONTENDERS: tuple[ContenderSpec, ...] = (
    ContenderSpec(FLOOR, QueueFanout, notes="one bounded queue + task per subscriber"),
    ContenderSpec(FLOOR_ONE, OneDispatcher, notes="one bounded queue + one task for all"),
    ContenderSpec(OURS, AgentEventsBus, notes="ANY and type subscriptions mixed"),
    ContenderSpec(OURS_METRICS, AgentEventsBusWithMetrics, in_bounded_table=False),
    ContenderSpec(
        "bubus",
        BubusBus,
        requires="bubus",
        notes="'*' and type handlers mixed; <= 40 in flight",
        max_events=1_000,
    ),
    ContenderSpec(
        "pyee AsyncIOEventEmitter",
        PyeeEmitter,
        requires="pyee",
        notes="no wildcard, no bound: one task per handler call",
    ),
    ContenderSpec(
        "blinker send_async",
        BlinkerSignal,
        requires="blinker",
        notes="no queue: the publisher runs the receivers",
        in_bounded_table=False,
    ),
)


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "?"


def load_average() -> str:
    """The 1, 5 and 15 minute load averages: how busy the machine was around a run."""
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


def machine_description() -> dict[str, str]:
    """CPU, cores, Python and contender versions, for the report header."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    versions = ", ".join(
        [f"agent-events {_version('agent-events')}"]
        + [f"{s.requires} {s.version}" for s in CONTENDERS if s.requires]
    )
    return {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "os": platform.platform(terse=True),
        "versions": versions,
    }
