"""Benchmark windowed aggregation: our processor vs hand-written aiokafka vs Quix Streams.

    python -m bench.windows                     # starts a local Apache Kafka, full run
    python -m bench.windows --quick             # seconds: a smoke run, figures meaningless
    python -m bench.windows --bootstrap-servers 127.0.0.1:9092 --json out.json

One stream for every contender, in one run: ``--events`` Avro ``SystemEvent``s, 100 ms
of event time apart, 3 event types x 7 agents, on 4 partitions keyed by
``event_type|agent_id`` (so each window key lives in one partition and no contender
needs a repartition, except the row that measures one). The aggregation: count, sum,
min, max and mean of ``execution_time_ms`` per key in 60 s tumbling windows with 5 s
grace, closed windows written to a topic, commits every 0.5 s. Each contender runs
``--repeats`` times in a fresh consumer group, reported as median (min-max) events/s
from the first event aggregated to the last.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import sys
import uuid
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from importlib import metadata
from pathlib import Path

from aiokafka import AIOKafkaProducer

from agent_events.agent_runtime.events import EventType, SystemEvent, event_time_ms
from agent_events.broker import KafkaCluster, create_topic
from agent_events.producers.headers import (
    AGENT_ID_HEADER,
    CONTENT_TYPE_HEADER,
    EVENT_TYPE_HEADER,
    PRODUCER_ID_HEADER,
    new_producer_id,
)
from agent_events.schemas.codec import CONTENT_TYPE, encode_event
from bench._windows_contenders import CONTENDERS
from bench.kafka import Spread, round_ratios

__all__ = ["main", "run_benchmark"]

PARTITIONS = 4
TYPES = (EventType.AGENT_STARTED, EventType.AGENT_COMPLETED, EventType.MIDDLEWARE_EXECUTED)
BASELINE = "raw aiokafka, hand-written (at least once, no state)"


@dataclass(frozen=True)
class Settings:
    events: int = 50_000
    repeats: int = 3

    @classmethod
    def quick(cls) -> Settings:
        return cls(events=2_000, repeats=1)


@dataclass
class Results:
    rates: dict[str, list[float]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    machine: str = ""
    load_average: dict[str, list[float]] = field(default_factory=dict)


def make_stream(count: int) -> list[SystemEvent]:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    return [
        SystemEvent(
            event_type=TYPES[i % 3],
            agent_id=f"agent-{i % 7}",
            user_id="user-1",
            session_id=f"session-{i % 500}",
            timestamp=start + timedelta(milliseconds=100 * i),
            execution_time_ms=(i * 37) % 5_000,
            metadata={"model": "gpt-4o-mini", "i": i},
        )
        for i in range(count)
    ]


async def produce_stream(bootstrap: str, events: list[SystemEvent]) -> str:
    topic = await create_topic(
        bootstrap, f"bench-windows-{uuid.uuid4().hex[:8]}", partitions=PARTITIONS
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=20
    )
    await producer.start()
    producer_id = new_producer_id().encode()
    try:
        for event in events:
            key = f"{event.event_type.value}|{event.agent_id}".encode()
            headers = [  # what KafkaEventProducer writes (the sequence left out)
                (EVENT_TYPE_HEADER, event.event_type.value.encode()),
                (AGENT_ID_HEADER, event.agent_id.encode()),
                (CONTENT_TYPE_HEADER, CONTENT_TYPE.encode()),
                (PRODUCER_ID_HEADER, producer_id),
            ]
            await producer.send(
                topic,
                encode_event(event),
                key=key,
                headers=headers,
                timestamp_ms=event_time_ms(event),
            )
        await producer.flush()
    finally:
        await producer.stop()
    return topic


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


async def run_benchmark(
    bootstrap: str | None, settings: Settings, say: Callable[[str], None]
) -> Results:
    results = Results(
        versions={d: _version(d) for d in ("aiokafka", "quixstreams", "confluent-kafka")},
        machine=f"{platform.machine()}, CPython {platform.python_version()}",
    )
    async with AsyncExitStack() as stack:
        if bootstrap is None:
            cluster = await stack.enter_async_context(KafkaCluster.single())
            bootstrap = cluster.bootstrap_servers
            say(f"started Apache Kafka {cluster.version} at {bootstrap}")
        topic = await produce_stream(bootstrap, make_stream(settings.events))
        say(f"produced {settings.events:,} events to {topic}")
        results.load_average["start"] = list(os.getloadavg())
        for repeat in range(settings.repeats):
            for name, contender in CONTENDERS.items():
                if name in results.errors:
                    continue
                try:
                    rate = await contender(bootstrap, topic, settings.events)
                except Exception as exc:  # a contender that cannot run is reported, not fatal
                    results.errors[name] = f"{type(exc).__name__}: {exc}"[:500]
                    say(f"{name}: FAILED {results.errors[name]}")
                    continue
                results.rates.setdefault(name, []).append(rate)
                say(f"[{repeat + 1}/{settings.repeats}] {name}: {rate:,.0f} events/s")
        results.load_average["end"] = list(os.getloadavg())
    return results


def report(results: Results) -> str:
    baseline = Spread(results.rates.get(BASELINE, []))
    lines = [
        "| contender | events/s median (min-max) | per round vs hand-written aiokafka |",
        "|---|---:|---:|",
    ]
    for name, rates in results.rates.items():
        r = round_ratios(Spread(rates), baseline)
        ratio = f"{r.median:.2f}x ({min(r.values):.2f}-{max(r.values):.2f})" if r.values else "n/a"
        lines.append(f"| {name} | {Spread(rates).text()} | {ratio} |")
    for name, error in results.errors.items():
        last = [line for line in error.splitlines() if line.strip()][-1:] or ["?"]
        lines.append(f"| {name} | failed: {last[0].strip()} | |")
    versions = ", ".join(f"{k} {v}" for k, v in results.versions.items())
    load = " -> ".join(
        "/".join(f"{x:.2f}" for x in results.load_average[k])
        for k in ("start", "end")
        if k in results.load_average
    )
    lines.append(f"\n{results.machine}; {versions}; load average (1/5/15 min) {load}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.windows", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument("--bootstrap-servers", default=None, help="use this cluster")
    parser.add_argument("--events", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    settings = Settings.quick() if args.quick else Settings()
    if args.events is not None:
        settings = Settings(args.events, settings.repeats)
    if args.repeats is not None:
        settings = Settings(settings.events, args.repeats)
    logging.basicConfig(level=logging.ERROR)
    results = asyncio.run(
        run_benchmark(
            args.bootstrap_servers, settings, lambda m: print(m, file=sys.stderr, flush=True)
        )
    )
    print(report(results))
    if args.json is not None:
        args.json.write_text(
            json.dumps({"settings": asdict(settings), "results": asdict(results)}, indent=2)
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
