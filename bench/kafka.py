"""Benchmark the Kafka path of agent-events against raw aiokafka and its peers, in one run.

    python -m bench.kafka                      # starts a local Apache Kafka, full run
    python -m bench.kafka --quick              # seconds: a smoke run, figures meaningless
    python -m bench.kafka --bootstrap-servers 127.0.0.1:9092 --json out.json

Contenders run in interleaved rounds (round 1: every contender once, then round 2 ...),
and each ratio is taken per round against the baseline of the same round, reported as
median (min-max) with the machine's load average and the versions that ran.

Scenarios, each repeated (``--repeats``) and reported as min / median / max:

1. producer events/s: the same Avro events and keys, ``acks=all`` idempotent, until
   every record is acknowledged (agent-events, raw aiokafka ``send()`` and
   ``send_batch()``, confluent-kafka, FastStream);
2. consumer events/s: decode every record and commit (agent-events ConsumerService,
   a raw aiokafka loop, confluent-kafka, FastStream), from the first record to the last;
3. end-to-end latency at fixed rates (1,000 and 5,000 events/s), producer send to handler
   start, p50/p99
   (agent-events producer + service, against raw aiokafka producer + loop);
4. ordering: per-key against per-partition with a 10 ms async handler, 12
   partitions, 1,000 sessions.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.metadata
import json
import logging
import os
import platform
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from agent_events.agent_runtime.event_bus import EventType, SystemEvent
from agent_events.broker import KafkaCluster, create_topic
from agent_events.consumers import ConsumerService
from agent_events.producers import KafkaEventProducer
from agent_events.producers.partitioner import SessionKeyPartitioner
from agent_events.schemas.codec import decode_event, encode_event
from bench._kafka_contenders import CONSUMERS, PRODUCERS, Ticker

__all__ = ["main", "run_benchmark"]

PARTITIONS = 12
SESSIONS = 1_000


@dataclass(frozen=True)
class Settings:
    events: int = 50_000
    repeats: int = 3
    latency_rates: tuple[float, ...] = (1_000.0, 5_000.0)
    latency_seconds: float = 5.0
    ordering_events: int = 3_000
    handler_delay_s: float = 0.010

    @classmethod
    def quick(cls) -> Settings:
        return cls(
            events=300, repeats=1, latency_rates=(200.0,), latency_seconds=0.5, ordering_events=120
        )


@dataclass
class Spread:
    values: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.values) if self.values else 0.0

    def text(self, unit: str = "") -> str:
        if not self.values:
            return "n/a"
        return f"{self.median:,.0f}{unit} ({min(self.values):,.0f}-{max(self.values):,.0f})"


def round_ratios(contender: Spread, baseline: Spread) -> Spread:
    """``contender / baseline`` round by round (values are in round order)."""
    return Spread([c / b for c, b in zip(contender.values, baseline.values, strict=False) if b])


def versions() -> dict[str, str]:
    """Python and the client libraries this run used (absent ones left out)."""
    found = {"python": platform.python_version()}
    for package in ("agent-events", "aiokafka", "confluent-kafka", "faststream", "fastavro"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            found[package] = importlib.metadata.version(package)
    return found


@dataclass
class Results:
    load_average: dict[str, list[float]] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=versions)
    producer: dict[str, Spread] = field(default_factory=dict)
    consumer: dict[str, Spread] = field(default_factory=dict)
    latency_ms: dict[str, dict[str, float]] = field(default_factory=dict)
    ordering: dict[str, float] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


def make_events(count: int) -> list[SystemEvent]:
    return [
        SystemEvent(
            event_type=EventType.AGENT_COMPLETED,
            agent_id=f"agent-{i % 7}",
            user_id="user-1",
            session_id=f"session-{i % SESSIONS}",
            execution_time_ms=i % 5000,
            metadata={"model": "gpt-3.5-turbo", "task": "Hello", "i": i},
        )
        for i in range(count)
    ]


async def new_topic(bootstrap: str, prefix: str) -> str:
    name = f"bench-{prefix}-{uuid.uuid4().hex[:8]}"
    return await create_topic(bootstrap, name, partitions=PARTITIONS)


async def bench_producers(
    bootstrap: str, s: Settings, results: Results, say: Callable[[str], None]
) -> None:
    events = make_events(s.events)
    for _ in range(s.repeats):
        for name, run in PRODUCERS.items():
            topic = await new_topic(bootstrap, "produce")
            started = time.perf_counter()
            try:
                await run(bootstrap, topic, events)
            except Exception as exc:  # a peer failing is reported, not fatal
                results.errors[f"producer {name}"] = repr(exc)
                continue
            rate = len(events) / (time.perf_counter() - started)
            results.producer.setdefault(name, Spread()).values.append(rate)
            say(f"producer {name}: {rate:,.0f} events/s")


async def bench_consumers(
    bootstrap: str, s: Settings, results: Results, say: Callable[[str], None]
) -> None:
    topic = await new_topic(bootstrap, "consume")
    async with KafkaEventProducer(bootstrap_servers=bootstrap, topic=topic) as producer:
        for event in make_events(s.events):
            await producer.send(event)
        await producer.flush()
    for _ in range(s.repeats):
        for name, run in CONSUMERS.items():
            ticker = Ticker(s.events)
            group = f"bench-{uuid.uuid4().hex[:8]}"
            try:
                await run(bootstrap, topic, group, ticker)
            except Exception as exc:
                results.errors[f"consumer {name}"] = repr(exc)
                continue
            results.consumer.setdefault(name, Spread()).values.append(ticker.rate)
            say(f"consumer {name}: {ticker.rate:,.0f} events/s")


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    if not ordered:
        return {"p50": 0.0, "p99": 0.0, "n": 0}
    return {
        "p50": ordered[len(ordered) // 2] * 1000,
        "p99": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000,
        "n": float(len(ordered)),
    }


async def paced(rate: float, seconds: float, send: Callable[[int], Awaitable[None]]) -> int:
    """Call ``send(i)`` at ``rate`` per second for ``seconds``; returns how many were sent."""
    total = int(rate * seconds)
    start = time.perf_counter()
    for i in range(total):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        await send(i)
    return total


async def latency_agent_events(bootstrap: str, s: Settings, rate: float) -> list[float]:
    topic = await new_topic(bootstrap, "latency")
    samples: list[float] = []
    total = int(rate * s.latency_seconds)
    done = asyncio.Event()

    async def measure(event: SystemEvent) -> None:
        samples.append(time.time() - float(event.metadata["sent"]))  # type: ignore[arg-type]
        if len(samples) >= total:
            done.set()

    async with AsyncExitStack() as stack:
        service = await stack.enter_async_context(
            ConsumerService(
                bootstrap_servers=bootstrap,
                topics=[topic],
                group_id=f"lat-{uuid.uuid4().hex[:6]}",
                auto_offset_reset="latest",
                dlq_topic=None,
                handlers=[measure],
            )
        )
        runner = asyncio.create_task(service.run())
        await wait_assigned(service)
        producer = await stack.enter_async_context(
            KafkaEventProducer(bootstrap_servers=bootstrap, topic=topic, linger_ms=0)
        )

        async def send(i: int) -> None:
            await producer.send(
                SystemEvent(
                    event_type=EventType.AGENT_COMPLETED,
                    agent_id="a",
                    session_id=f"session-{i % SESSIONS}",
                    metadata={"sent": time.time()},
                )
            )

        await paced(rate, s.latency_seconds, send)
        async with asyncio.timeout(60):
            await done.wait()
        service.request_stop()
        await runner
    return samples


async def wait_assigned(service: ConsumerService) -> None:
    async with asyncio.timeout(60):
        while not service.assignment:  # noqa: ASYNC110  (no event to await for it)
            await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)  # let the first fetch position settle at the end


async def latency_raw(bootstrap: str, s: Settings, rate: float) -> list[float]:
    topic = await new_topic(bootstrap, "latency-raw")
    samples: list[float] = []
    total = int(rate * s.latency_seconds)
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"lat-raw-{uuid.uuid4().hex[:6]}",
        enable_auto_commit=False,
        auto_offset_reset="latest",
    )
    await consumer.start()
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        partitioner=SessionKeyPartitioner(),
    )
    await producer.start()

    async def consume() -> None:
        while len(samples) < total:
            batch = await consumer.getmany(timeout_ms=100)
            for records in batch.values():
                for record in records:
                    event = decode_event(record.value)
                    samples.append(time.time() - float(event.metadata["sent"]))  # type: ignore[arg-type]
            if batch:
                await consumer.commit({tp: records[-1].offset + 1 for tp, records in batch.items()})

    try:
        async with asyncio.timeout(60):
            while not consumer.assignment():  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        reader = asyncio.create_task(consume())

        async def send(i: int) -> None:
            event = SystemEvent(
                event_type=EventType.AGENT_COMPLETED,
                agent_id="a",
                session_id=f"session-{i % SESSIONS}",
                metadata={"sent": time.time()},
            )
            await producer.send(topic, encode_event(event), key=str(event.session_id).encode())

        await paced(rate, s.latency_seconds, send)
        async with asyncio.timeout(60):
            await reader
    finally:
        await producer.stop()
        await consumer.stop()
    return samples


async def bench_latency(
    bootstrap: str, s: Settings, results: Results, say: Callable[[str], None]
) -> None:
    for rate in s.latency_rates:
        for name, run in (("agent-events", latency_agent_events), ("raw aiokafka", latency_raw)):
            label = f"{name} at {rate:,.0f} events/s"
            try:
                samples = await run(bootstrap, s, rate)
            except Exception as exc:
                results.errors[f"latency {label}"] = repr(exc)
                continue
            results.latency_ms[label] = percentiles(samples)
            say(f"latency {label}: {results.latency_ms[label]}")


async def bench_ordering(
    bootstrap: str, s: Settings, results: Results, say: Callable[[str], None]
) -> None:
    topic = await new_topic(bootstrap, "ordering")
    events = make_events(s.ordering_events)
    async with KafkaEventProducer(bootstrap_servers=bootstrap, topic=topic) as producer:
        for event in events:
            await producer.send(event)
        await producer.flush()
    for ordering in ("partition", "key"):
        ticker = Ticker(len(events))

        async def slow(event: SystemEvent, ticker: Ticker = ticker) -> None:
            await asyncio.sleep(s.handler_delay_s)
            ticker.tick()

        async with ConsumerService(
            bootstrap_servers=bootstrap,
            topics=[topic],
            group_id=f"order-{ordering}-{uuid.uuid4().hex[:6]}",
            ordering=ordering,
            dlq_topic=None,
            handlers=[slow],
        ) as service:
            runner = asyncio.create_task(service.run())
            async with asyncio.timeout(600):
                await ticker.done.wait()
            service.request_stop()
            await runner
        results.ordering[ordering] = ticker.rate
        say(f"ordering {ordering}: {ticker.rate:,.0f} events/s")


async def run_benchmark(bootstrap: str | None, s: Settings, say: Callable[[str], None]) -> Results:
    results = Results()
    results.load_average["start"] = list(os.getloadavg())
    async with AsyncExitStack() as stack:
        if bootstrap is None:
            cluster = await stack.enter_async_context(KafkaCluster.single())
            bootstrap = cluster.bootstrap_servers
            say(f"started Apache Kafka at {bootstrap}")
        await bench_producers(bootstrap, s, results, say)
        await bench_consumers(bootstrap, s, results, say)
        await bench_latency(bootstrap, s, results, say)
        await bench_ordering(bootstrap, s, results, say)
    results.load_average["end"] = list(os.getloadavg())
    return results


def report(results: Results) -> str:
    load = results.load_average
    lines = [
        "versions: " + ", ".join(f"{k} {v}" for k, v in results.versions.items()),
        "load average (1/5/15 min) at start "
        + "/".join(f"{x:.2f}" for x in load.get("start", []))
        + ", at end "
        + "/".join(f"{x:.2f}" for x in load.get("end", [])),
        "",
    ]
    lines += _ratio_table(
        "producer", results.producer, ("raw aiokafka send_batch()", "confluent-kafka")
    )
    lines.append("")
    lines += _ratio_table(
        "consumer (decode, no-op handler, commit)",
        results.consumer,
        ("raw aiokafka loop", "confluent-kafka"),
    )
    lines.append("")
    lines.append("| end to end | p50 ms | p99 ms | samples |")
    lines.append("|---|---:|---:|---:|")
    for name, p in results.latency_ms.items():
        lines.append(f"| {name} | {p['p50']:.1f} | {p['p99']:.1f} | {p['n']:.0f} |")
    if results.ordering:
        lines.append("")
        part, key = results.ordering.get("partition", 0.0), results.ordering.get("key", 0.0)
        lines.append("| ordering, 10 ms handler, 12 partitions, 1,000 sessions | events/s |")
        lines.append("|---|---:|")
        lines.append(f"| per partition | {part:,.0f} |")
        lines.append(f"| per key | {key:,.0f} ({key / part if part else 0:.1f}x) |")
    for what, error in results.errors.items():
        lines.append(f"\n{what} FAILED: {error}")
    return "\n".join(lines)


def _ratio_table(title: str, spreads: dict[str, Spread], baselines: tuple[str, ...]) -> list[str]:
    """Events/s per contender, and its per-round ratio to each baseline present."""
    present = [b for b in baselines if b in spreads]
    header = f"| {title} | events/s median (min-max) | " + " | ".join(
        f"per round vs {b}" for b in present
    )
    lines = [header + " |", "|---|---:|" + "---:|" * len(present)]
    for name, spread in spreads.items():
        ratios = [round_ratios(spread, spreads[b]) for b in present]
        cells = " | ".join(
            f"{r.median:.2f}x ({min(r.values):.2f}-{max(r.values):.2f})" if r.values else "n/a"
            for r in ratios
        )
        lines.append(f"| {name} | {spread.text()} | {cells} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.kafka", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--bootstrap-servers", default=None, help="use this cluster instead of starting one"
    )
    parser.add_argument("--events", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    settings = Settings.quick() if args.quick else Settings()
    if args.events is not None:
        settings = Settings(**{**asdict(settings), "events": args.events})
    if args.repeats is not None:
        settings = Settings(**{**asdict(settings), "repeats": args.repeats})
    logging.basicConfig(level=logging.ERROR)
    results = asyncio.run(
        run_benchmark(
            args.bootstrap_servers, settings, lambda m: print(m, file=sys.stderr, flush=True)
        )
    )
    print(report(results))
    if args.json is not None:
        args.json.write_text(
            json.dumps(
                {"settings": asdict(settings), "results": asdict(results)},
                indent=2,
                default=lambda o: o.values,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
