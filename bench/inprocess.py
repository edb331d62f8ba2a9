"""Benchmark the in-process EventBus against the buses Python users pick.

Every figure comes from one run of this command. Each measurement is repeated
(``--repeats``) on a fresh bus and reported as min / median / max; ratios compare
medians with a bare ``asyncio.Queue`` fan-out written here (one bounded queue and
one consumer task per subscriber), the floor any queued bus builds on. All
contenders get the same event payload, the same handlers and the same queue bound.

    python -m bench.inprocess                  # full run, a few minutes on 2 cores
    python -m bench.inprocess --quick          # seconds: a smoke run, figures meaningless
    python -m bench.inprocess --json out.json --plot docs/img/inprocess_throughput.png

Scenarios: publish -> delivery throughput with 1, 4 and 16 async no-op handlers;
publish -> handler-start latency at a fixed rate; ``publish_sync`` (or the
contender's thread hand-off) from another thread; memory per queued event and
with the queues full (tracemalloc).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench._inprocess_contenders import (
    CONTENDERS,
    FLOORS,
    Contender,
    ContenderSpec,
    Handler,
    load_average,
    machine_description,
)

__all__ = ["main", "run_benchmark"]

SUBSCRIBER_COUNTS = (1, 4, 16)
LATENCY_SUBSCRIBERS = 4
THREAD_SUBSCRIBERS = 4
THREAD_ROUNDS = 5
MEMORY_SUBSCRIBERS = 4
DELIVERY_DEADLINE_S = 120.0


@dataclass(frozen=True)
class Settings:
    """What one run measures, from the command line."""

    events: int = 20_000
    repeats: int = 5
    latency_rate: float = 2_000.0
    latency_duration_s: float = 2.0
    thread_events: int = 10_000
    memory_bound: int = 1_000
    memory_offered: tuple[int, ...] = (500, 1_000, 2_000, 10_000)
    per_event_offered: int = 1_000

    @classmethod
    def quick(cls) -> Settings:
        return cls(
            events=300,
            repeats=1,
            latency_duration_s=0.1,
            thread_events=100,
            memory_bound=50,
            memory_offered=(25, 100),
            per_event_offered=40,
        )


@dataclass
class Spread:
    """min / median / max of repeated measurements."""

    samples: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.samples) if self.samples else float("nan")

    @property
    def low(self) -> float:
        return min(self.samples) if self.samples else float("nan")

    @property
    def high(self) -> float:
        return max(self.samples) if self.samples else float("nan")

    def as_dict(self) -> dict[str, Any]:
        return {"min": self.low, "median": self.median, "max": self.high, "samples": self.samples}


# ------------------------------------------------------------------ handlers


class CountingSink:
    """The no-op handler: counts its calls and says when it has seen them all."""

    def __init__(self, expected: int) -> None:
        self.calls = 0
        self.expected = expected
        self.done = asyncio.Event()
        if expected <= 0:
            self.done.set()

    async def handle(self, event: Any) -> None:
        self.calls += 1
        if self.calls == self.expected:
            self.done.set()


class LatencySink(CountingSink):
    """Records, at handler start, how long ago the event's publish call began."""

    def __init__(self, expected: int, sent: list[float], samples: list[float]) -> None:
        super().__init__(expected)
        self.sent = sent
        self.samples = samples

    async def handle(self, event: Any) -> None:
        self.samples.append(time.perf_counter() - self.sent[event.metadata["i"]])
        await super().handle(event)


class GatedSink(CountingSink):
    """Blocks on a gate, so everything published stays queued until it opens."""

    def __init__(self, gate: asyncio.Event) -> None:
        super().__init__(expected=-1)
        self.done.clear()
        self.gate = gate

    async def handle(self, event: Any) -> None:
        await self.gate.wait()
        await super().handle(event)


async def _all_done(sinks: Sequence[CountingSink], what: str) -> None:
    try:
        async with asyncio.timeout(DELIVERY_DEADLINE_S):
            for sink in sinks:
                await sink.done.wait()
    except TimeoutError:
        seen = [s.calls for s in sinks]
        raise RuntimeError(
            f"{what}: not delivered within {DELIVERY_DEADLINE_S}s ({seen})"
        ) from None


async def _opened(spec: ContenderSpec, handlers: Sequence[Handler], bound: int) -> Contender:
    contender = spec.build(bound)
    await contender.open(handlers)
    return contender


# ------------------------------------------------------------------ scenarios


async def measure_throughput(spec: ContenderSpec, subscribers: int, events: int) -> float:
    """Events/s from the first publish until every subscriber has handled every event."""
    contender = spec.build(spec.default_bound)
    batch = [contender.make_event(i) for i in range(events)]
    sinks = [CountingSink(events) for _ in range(subscribers)]
    await contender.open([s.handle for s in sinks])
    try:
        gc.collect()
        start = time.perf_counter()
        for event in batch:
            await contender.publish(event)
        await _all_done(sinks, f"{spec.name} throughput")
        return events / (time.perf_counter() - start)
    finally:
        await contender.close()


@dataclass
class LatencyRun:
    p50_us: float
    p99_us: float
    sent: int
    planned: int


async def measure_latency(
    spec: ContenderSpec, subscribers: int, rate: float, duration_s: float
) -> LatencyRun:
    """Publish at ``rate`` for ``duration_s``; each handler records publish -> start."""
    planned = max(2, int(rate * duration_s))
    contender = spec.build(spec.default_bound)
    batch = [contender.make_event(i) for i in range(planned)]
    sent = [0.0] * planned
    samples: list[float] = []
    sinks = [LatencySink(planned, sent, samples) for _ in range(subscribers)]
    await contender.open([s.handle for s in sinks])
    published = 0
    try:
        start = time.perf_counter()
        give_up = start + duration_s + 1.0  # a bus that cannot keep the rate stops here
        for i, event in enumerate(batch):
            now = time.perf_counter()
            if now > give_up:
                break
            delay = start + i / rate - now
            if delay > 0:
                await asyncio.sleep(delay)
            sent[i] = time.perf_counter()
            await contender.publish(event)
            published += 1
        for sink in sinks:
            sink.expected = published
            if sink.calls >= published:
                sink.done.set()
        await _all_done(sinks, f"{spec.name} latency")
    finally:
        await contender.close()
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return LatencyRun(cuts[49] * 1e6, cuts[98] * 1e6, published, planned)


async def measure_thread_publish(spec: ContenderSpec, subscribers: int, events: int) -> float:
    """Events/s when one other thread publishes (``publish_sync`` or equivalent)."""
    contender = spec.build(spec.default_bound)
    batch = [contender.make_event(i) for i in range(events)]
    sinks = [CountingSink(events) for _ in range(subscribers)]
    await contender.open([s.handle for s in sinks])
    loop = asyncio.get_running_loop()

    def produce() -> None:
        for event in batch:
            contender.publish_from_thread(loop, event)

    try:
        start = time.perf_counter()
        await asyncio.to_thread(produce)
        await _all_done(sinks, f"{spec.name} thread publish")
        return events / (time.perf_counter() - start)
    finally:
        await contender.close()


@dataclass
class MemoryRun:
    offered: int
    accepted: int
    retained_bytes: int

    @property
    def per_event(self) -> float:
        return self.retained_bytes / self.accepted if self.accepted else float("nan")


async def measure_memory(
    spec: ContenderSpec, subscribers: int, offered: int, bound: int
) -> MemoryRun | None:
    """Memory kept after offering ``offered`` events, as fast as possible, to blocked handlers.

    Events are made inside the traced window and dropped by the publisher, so
    what stays is what the bus holds: the events, queue slots, tasks. ``None``
    when the contender has no non-blocking publish (nothing can queue).
    """
    gate = asyncio.Event()
    sinks = [GatedSink(gate) for _ in range(subscribers)]
    contender = await _opened(spec, [s.handle for s in sinks], bound)
    accepted = 0
    try:
        if not contender.can_publish_nowait:
            return None
        gc.collect()
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        for i in range(offered):
            if contender.publish_nowait(contender.make_event(i)):
                accepted += 1
        await asyncio.sleep(0)  # workers/tasks take their first event and block
        await asyncio.sleep(0)
        gc.collect()
        retained = tracemalloc.get_traced_memory()[0] - base
        tracemalloc.stop()
        return MemoryRun(offered, accepted, retained)
    finally:
        if tracemalloc.is_tracing():
            tracemalloc.stop()
        for sink in sinks:
            sink.expected = accepted
            if sink.calls >= accepted:
                sink.done.set()
        gate.set()
        await _all_done(sinks, f"{spec.name} memory drain")
        await contender.close()


# ------------------------------------------------------------------ the run


@dataclass
class Results:
    settings: Settings
    machine: dict[str, str]
    unavailable: dict[str, str] = field(default_factory=dict)
    events_used: dict[str, int] = field(default_factory=dict)
    thread_events_used: dict[str, int] = field(default_factory=dict)
    throughput: dict[str, dict[int, Spread]] = field(default_factory=dict)
    latency_p50: dict[str, Spread] = field(default_factory=dict)
    latency_p99: dict[str, Spread] = field(default_factory=dict)
    latency_sent: dict[str, tuple[int, int]] = field(default_factory=dict)
    thread: dict[str, Spread] = field(default_factory=dict)
    memory_per_event: dict[str, MemoryRun | None] = field(default_factory=dict)
    memory_bounded: dict[str, list[MemoryRun]] = field(default_factory=dict)

    def round_ratios(self, name: str, floor: str, subscribers: int) -> Spread:
        """``name`` / ``floor`` throughput round by round (both ran in the same round)."""
        ours = self.throughput.get(name, {}).get(subscribers)
        base = self.throughput.get(floor, {}).get(subscribers)
        if ours is None or base is None:
            return Spread()
        return Spread([a / b for a, b in zip(ours.samples, base.samples, strict=False) if b])

    def as_json(self) -> dict[str, Any]:
        return {
            "settings": asdict(self.settings),
            "machine": self.machine,
            "throughput_round_ratios": {
                name: {
                    floor: {
                        str(n): self.round_ratios(name, floor, n).as_dict()
                        for n in SUBSCRIBER_COUNTS
                    }
                    for floor in FLOORS
                }
                for name in self.throughput
            },
            "unavailable": self.unavailable,
            "events_used": self.events_used,
            "thread_events_used": self.thread_events_used,
            "throughput_events_per_s": {
                name: {str(k): s.as_dict() for k, s in rows.items()}
                for name, rows in self.throughput.items()
            },
            "latency_us": {
                name: {
                    "p50": self.latency_p50[name].as_dict(),
                    "p99": self.latency_p99[name].as_dict(),
                    "sent_planned": self.latency_sent[name],
                }
                for name in self.latency_p50
            },
            "thread_publish_events_per_s": {n: s.as_dict() for n, s in self.thread.items()},
            "memory_per_queued_event": {
                n: (asdict(r) | {"bytes_per_event": r.per_event}) if r else None
                for n, r in self.memory_per_event.items()
            },
            "memory_bounded": {
                n: [asdict(r) for r in runs] for n, runs in self.memory_bounded.items()
            },
        }


Progress = Callable[[str], None]


async def run_benchmark(settings: Settings, progress: Progress = lambda _: None) -> Results:
    """Run every scenario for every contender; repeats interleave contenders (fair drift)."""
    logging.getLogger("bubus").setLevel(logging.CRITICAL)
    logging.getLogger("agent_events.agent_runtime").setLevel(logging.CRITICAL)
    results = Results(settings, machine_description() | {"load_start": load_average()})
    specs = []
    for spec in CONTENDERS:
        missing = spec.unavailable_reason()
        if missing:
            results.unavailable[spec.name] = missing
        else:
            specs.append(spec)
            results.events_used[spec.name] = spec.events_for(settings.events)
    for spec in specs:
        results.throughput[spec.name] = {n: Spread() for n in SUBSCRIBER_COUNTS}
        results.latency_p50[spec.name] = Spread()
        results.latency_p99[spec.name] = Spread()
        results.thread[spec.name] = Spread()

    # Rounds interleave contenders (round 1: A, B, C; round 2: A, B, C ...), so the
    # ratios of one round compare runs that saw the same machine load.
    for repeat in range(settings.repeats):
        for subscribers in SUBSCRIBER_COUNTS:
            for spec in specs:
                progress(f"throughput {repeat + 1}/{settings.repeats} {spec.name} x{subscribers}")
                rate = await measure_throughput(spec, subscribers, results.events_used[spec.name])
                results.throughput[spec.name][subscribers].samples.append(rate)
        for spec in specs:
            progress(f"latency {repeat + 1}/{settings.repeats} {spec.name}")
            run = await measure_latency(
                spec, LATENCY_SUBSCRIBERS, settings.latency_rate, settings.latency_duration_s
            )
            results.latency_p50[spec.name].samples.append(run.p50_us)
            results.latency_p99[spec.name].samples.append(run.p99_us)
            results.latency_sent[spec.name] = (run.sent, run.planned)
        # Thread hand-offs are bound by OS wake-ups, which other processes on a
        # small machine disturb: short interleaved rounds spread that noise evenly.
        spent = {spec.name: 0.0 for spec in specs}
        for round_ in range(THREAD_ROUNDS):
            for spec in specs[round_ % len(specs) :] + specs[: round_ % len(specs)]:
                progress(f"thread publish {repeat + 1}/{settings.repeats} {spec.name}")
                events = max(1, spec.events_for(settings.thread_events) // THREAD_ROUNDS)
                rate = await measure_thread_publish(spec, THREAD_SUBSCRIBERS, events)
                spent[spec.name] += events / rate
        for spec in specs:
            events = max(1, spec.events_for(settings.thread_events) // THREAD_ROUNDS)
            results.thread_events_used[spec.name] = events * THREAD_ROUNDS
            results.thread[spec.name].samples.append(events * THREAD_ROUNDS / spent[spec.name])

    for spec in specs:  # tracemalloc figures are deterministic: one run each
        progress(f"memory {spec.name}")
        results.memory_per_event[spec.name] = await measure_memory(
            spec, MEMORY_SUBSCRIBERS, settings.per_event_offered, spec.default_bound
        )
        if spec.in_bounded_table:
            runs = [
                await measure_memory(spec, 1, offered, settings.memory_bound)
                for offered in settings.memory_offered
            ]
            results.memory_bounded[spec.name] = [r for r in runs if r is not None]
    results.machine["load_end"] = load_average()
    return results


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.inprocess",
        description="In-process EventBus against asyncio.Queue, bubus, pyee and blinker.",
    )
    parser.add_argument("--events", type=int, help="events per throughput run (default 20000)")
    parser.add_argument("--repeats", type=int, help="runs per figure (default 5)")
    parser.add_argument("--quick", action="store_true", help="tiny counts: a smoke run")
    parser.add_argument("--json", type=Path, help="write every figure to this JSON file")
    parser.add_argument("--plot", type=Path, help="write the throughput chart to this PNG")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    settings = Settings.quick() if args.quick else Settings()
    overrides: dict[str, Any] = {}
    if args.events is not None:
        overrides["events"] = max(1, args.events)
    if args.repeats is not None:
        overrides["repeats"] = max(1, args.repeats)
    if overrides:
        settings = Settings(**(asdict(settings) | overrides))

    from bench._inprocess_report import plot_throughput, print_report

    def progress(message: str) -> None:
        if sys.stderr.isatty():  # a terminal sees where a long run is; logs stay clean
            print(f"\r\033[K  ... {message}", end="", file=sys.stderr, flush=True)

    results = asyncio.run(run_benchmark(settings, progress))
    if sys.stderr.isatty():
        print("\r\033[K", end="", file=sys.stderr, flush=True)
    print_report(results)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results.as_json(), indent=2) + "\n")
        print(f"figures written to {args.json}")
    if args.plot:
        plot_throughput(results, args.plot)
        print(f"plot written to {args.plot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
