"""Benchmark a whole-topic replay against a raw aiokafka read of the same records, in one run.

    python -m bench.replay                     # starts a local Apache Kafka, full run
    python -m bench.replay --quick             # seconds: a smoke run, figures meaningless
    python -m bench.replay --bootstrap-servers 127.0.0.1:9092 --json out.json

One topic (6 partitions) is filled once with Avro events from the agent-events producer.
Then, alternating, each contender reads the whole topic ``--repeats`` times and decodes
every value into a ``SystemEvent``; the time is the whole call a user waits for (client
start, offsets, reading, stop), reported as records/s, min / median / max:

* **raw aiokafka** (the baseline): a group-less ``AIOKafkaConsumer``, ``assign``, ``seek``
  to the beginning offsets, end offsets taken once, ``getmany`` until every partition
  reached them, ``EventCodec.decode`` on each value;
* **replay -> no-op handler**: ``consumers.replay.replay`` with a ``HandlerSink`` of an
  ``async def`` that does nothing (the target: >= 80% of the baseline);
* **replay -> service sink**: the same into a ``ServiceSink`` (each event dispatched on an
  ``EventBus`` to one no-op handler), the way a rebuilt service would run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition

from agent_events.agent_runtime.event_bus import EventType, SystemEvent
from agent_events.broker import KafkaCluster, create_topic
from agent_events.consumers.replay import HandlerSink, ReplaySpec, ServiceSink, replay
from agent_events.producers import KafkaEventProducer
from agent_events.producers.config import KafkaConnectionConfig
from agent_events.schemas.codec import EventCodec

__all__ = ["main", "run_benchmark"]

PARTITIONS = 6
SESSIONS = 1_000
TARGET_RATIO = 0.80
RAW = "raw aiokafka (baseline)"
NOOP = "replay -> no-op handler"
SERVICE = "replay -> service sink"


@dataclass(frozen=True)
class Settings:
    """What one run measures."""

    events: int = 200_000
    repeats: int = 5

    @classmethod
    def quick(cls) -> Settings:
        return cls(events=600, repeats=1)


@dataclass
class Results:
    """Records/s per contender, one value per repeat."""

    events: int = 0
    rates: dict[str, list[float]] = field(default_factory=dict)

    def median(self, name: str) -> float:
        values = self.rates.get(name, [])
        return statistics.median(values) if values else 0.0

    def paired_ratios(self, name: str) -> list[float]:
        """``name``'s rate over the baseline's in the same round: robust to drifting load."""
        pairs = zip(self.rates.get(name, []), self.rates.get(RAW, []), strict=False)
        return [rate / base for rate, base in pairs if base > 0]


async def fill_topic(bootstrap: str, events: int) -> str:
    """A fresh topic holding ``events`` events of ``SESSIONS`` sessions."""
    topic = await create_topic(
        bootstrap, f"bench-replay-{uuid.uuid4().hex[:8]}", partitions=PARTITIONS
    )
    async with KafkaEventProducer(
        bootstrap_servers=bootstrap, topic=topic, linger_ms=20, max_batch_size=512 * 1024
    ) as producer:
        for i in range(events):
            await producer.send(
                SystemEvent(
                    event_type=EventType.AGENT_COMPLETED,
                    agent_id=f"agent-{i % 7}",
                    user_id="user",
                    session_id=f"session-{i % SESSIONS}",
                    metadata={"i": i, "tokens": 321, "model": "gpt"},
                    execution_time_ms=125,
                )
            )
        await producer.flush()
    return topic


async def raw_read(bootstrap: str, topic: str) -> int:
    """Every record of ``topic`` decoded, with aiokafka alone; returns the count."""
    codec = EventCodec()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed",
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(tps)
        begin = await consumer.beginning_offsets(tps)
        end = await consumer.end_offsets(tps)
        for tp in tps:
            consumer.seek(tp, begin[tp])
        remaining = {tp for tp in tps if end[tp] > begin[tp]}
        count = 0
        while remaining:
            batch = await consumer.getmany(*remaining, timeout_ms=500)
            for tp, records in batch.items():
                for record in records:
                    codec.decode(record.value)
                    count += 1
                if records and records[-1].offset + 1 >= end[tp]:
                    remaining.discard(tp)
        return count
    finally:
        await consumer.stop()


async def replay_noop(bootstrap: str, topic: str) -> int:
    async def noop(event: SystemEvent) -> None:
        return None

    connection = KafkaConnectionConfig(bootstrap_servers=bootstrap)
    report = await replay(connection, ReplaySpec(topic), HandlerSink(noop))
    return report.delivered


async def replay_service(bootstrap: str, topic: str) -> int:
    async def noop(event: SystemEvent) -> None:
        return None

    connection = KafkaConnectionConfig(bootstrap_servers=bootstrap)
    report = await replay(connection, ReplaySpec(topic), ServiceSink([noop]))
    return report.delivered


CONTENDERS: dict[str, Callable[[str, str], Awaitable[int]]] = {
    RAW: raw_read,
    NOOP: replay_noop,
    SERVICE: replay_service,
}


async def run_benchmark(
    bootstrap: str | None, settings: Settings, say: Callable[[str], None]
) -> Results:
    """Fill one topic, then read it with every contender in turn, ``repeats`` rounds."""
    results = Results(events=settings.events)
    async with AsyncExitStack() as stack:
        if bootstrap is None:
            cluster = await stack.enter_async_context(KafkaCluster.single())
            bootstrap = cluster.bootstrap_servers
            say(f"started Apache Kafka at {bootstrap}")
        started = time.perf_counter()
        topic = await fill_topic(bootstrap, settings.events)
        say(
            f"filled {topic} with {settings.events:,} events in {time.perf_counter() - started:.1f} s"
        )
        for read in CONTENDERS.values():  # one warm-up read each (page cache, imports)
            await read(bootstrap, topic)
        for round_ in range(settings.repeats):
            for name, read in CONTENDERS.items():
                started = time.perf_counter()
                count = await read(bootstrap, topic)
                elapsed = time.perf_counter() - started
                if count != settings.events:
                    raise RuntimeError(f"{name} read {count} of {settings.events} records")
                rate = count / elapsed
                results.rates.setdefault(name, []).append(rate)
                say(f"round {round_ + 1}: {name}: {rate:,.0f} records/s")
    return results


def report(results: Results) -> str:
    """The results as a Markdown table, with each ratio to the raw aiokafka baseline."""
    base = results.median(RAW)
    lines = [
        f"whole-topic read of {results.events:,} Avro events, {PARTITIONS} partitions",
        "",
        "| reader | records/s median (min-max) | vs raw aiokafka (medians) "
        "| vs raw aiokafka, same round (median, min-max) |",
        "|---|---:|---:|---:|",
    ]
    for name, values in results.rates.items():
        median = statistics.median(values)
        ratio = median / base if base else 0.0
        paired = results.paired_ratios(name)
        lines.append(
            f"| {name} | {median:,.0f} ({min(values):,.0f}-{max(values):,.0f}) | {ratio:.2f}x "
            f"| {statistics.median(paired):.2f}x ({min(paired):.2f}-{max(paired):.2f}) |"
        )
    ratio = statistics.median(results.paired_ratios(NOOP) or [0.0])
    verdict = "met" if ratio >= TARGET_RATIO else "NOT met"
    lines += [
        "",
        f"target: replay >= {TARGET_RATIO:.0%} of raw aiokafka (same-round median): "
        f"{ratio:.0%}, {verdict}",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.replay", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument(
        "--bootstrap-servers", default=None, help="use this cluster instead of starting one"
    )
    parser.add_argument("--events", type=int, default=None, help="records in the topic")
    parser.add_argument("--repeats", type=int, default=None, help="reads per contender")
    parser.add_argument("--quick", action="store_true", help="tiny run: figures meaningless")
    parser.add_argument("--json", type=Path, default=None, help="write every figure here")
    args = parser.parse_args(argv)
    settings = Settings.quick() if args.quick else Settings()
    if args.events is not None:
        settings = Settings(events=args.events, repeats=settings.repeats)
    if args.repeats is not None:
        settings = Settings(events=settings.events, repeats=args.repeats)
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
