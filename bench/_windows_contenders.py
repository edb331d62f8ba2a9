"""The contenders of ``bench.windows``: one function each, same stream, same aggregation.

Every contender consumes the same topic from the beginning in a fresh consumer group,
decodes each Avro event with the project's codec, keeps count / sum / min / max / mean
of ``execution_time_ms`` per ``(event_type, agent_id)`` in 60 s tumbling windows with
5 s grace, and writes each closed window to an output topic. Each returns the events/s
it sustained from the first event it aggregated to the last (start-up and group join
are not counted; the same for all).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from agent_events.broker import create_topic
from agent_events.consumers.windows import WindowProcessor
from agent_events.consumers.windows.aggregations import event_time_ms
from agent_events.schemas.codec import decode_event

__all__ = ["CONTENDERS", "GRACE_MS", "SIZE_MS", "Contender", "run_quix"]

SIZE_MS = 60_000
GRACE_MS = 5_000
COMMIT_INTERVAL_S = 0.5
POLL_S = 0.005
ROOT = Path(__file__).resolve().parents[1]

Contender = Callable[[str, str, int], Awaitable[float]]


def _rate(events: int, seen: int, elapsed: float, launched: float) -> float:
    """Events/s after the first batch; when that batch held them all (a --quick run),
    over the whole run instead, so a rate is never 0."""
    if events > seen and elapsed > 0:
        return (events - seen) / elapsed
    return events / (time.perf_counter() - launched)


def _group(name: str) -> str:
    return f"bench-windows-{name}-{uuid.uuid4().hex[:8]}"


async def _ours(bootstrap: str, topic: str, events: int, **settings: Any) -> float:
    group = _group("ours")
    processor = WindowProcessor(
        bootstrap_servers=bootstrap,
        topics=[topic],
        group_id=group,
        output_topic=f"{group}.out",
        dlq_topic=None,
        window="tumbling:60s",
        grace="5s",
        commit_interval_s=COMMIT_INTERVAL_S,
        **settings,
    )
    launched = time.perf_counter()
    async with processor:
        runner = asyncio.create_task(processor.run())
        while (seen := processor.metrics_snapshot().events) == 0:  # noqa: ASYNC110
            await asyncio.sleep(POLL_S)  # a counter to watch, nothing to await
        started = time.perf_counter()
        while processor.metrics_snapshot().events < events:
            if runner.done():
                runner.result()
            await asyncio.sleep(POLL_S)
        elapsed = time.perf_counter() - started
        processor.request_stop()
        await runner
    return _rate(events, seen, elapsed, launched)


async def ours_exactly_once(bootstrap: str, topic: str, events: int) -> float:
    """WindowProcessor, transactions (the default on Kafka), input keyed by window key."""
    return await _ours(
        bootstrap, topic, events, processing_guarantee="exactly_once", repartition=False
    )


async def ours_at_least_once(bootstrap: str, topic: str, events: int) -> float:
    """WindowProcessor without transactions (what it does on Tansu)."""
    return await _ours(
        bootstrap, topic, events, processing_guarantee="at_least_once", repartition=False
    )


async def ours_repartitioned(bootstrap: str, topic: str, events: int) -> float:
    """WindowProcessor as deployed on agent.events (keyed by session): two stages."""
    return await _ours(
        bootstrap, topic, events, processing_guarantee="exactly_once", repartition=True
    )


async def raw_aiokafka(bootstrap: str, topic: str, events: int) -> float:
    launched = time.perf_counter()
    """The same windows written by hand: a dict of windows, flush then commit every 0.5 s.

    At least once, and no changelog: a crash loses every open window.
    """
    group = _group("raw")
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=1_000,
        isolation_level="read_committed",
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=5
    )
    await create_topic(bootstrap, f"{group}.out", partitions=4)
    await producer.start()
    await consumer.start()
    windows: dict[tuple[str, int, int], list[float]] = {}
    watermarks: dict[int, int] = {}
    done, started, seen = 0, 0.0, 0
    last_commit = time.monotonic()
    try:
        while done < events:
            batch = await consumer.getmany(timeout_ms=100)
            for tp, records in batch.items():
                wm = watermarks.get(tp.partition, 0)
                for record in records:
                    event = decode_event(record.value)
                    ts = event_time_ms(event)
                    wm = max(wm, ts)
                    start = ts - ts % SIZE_MS
                    key = f"{event.event_type.value}|{event.agent_id}"
                    acc = windows.get((key, tp.partition, start))
                    value = event.execution_time_ms or 0
                    if acc is None:
                        windows[(key, tp.partition, start)] = [1, value, value, value]
                    else:
                        acc[0] += 1
                        acc[1] += value
                        acc[2] = min(acc[2], value)
                        acc[3] = max(acc[3], value)
                watermarks[tp.partition] = wm
                closed = [
                    w for w in windows if w[1] == tp.partition and w[2] + SIZE_MS + GRACE_MS <= wm
                ]
                for window in closed:
                    count, total, low, high = windows.pop(window)
                    out = {"key": window[0], "start": window[2], "count": count, "sum": total,
                           "min": low, "max": high, "mean": total / count}  # fmt: skip
                    await producer.send(
                        f"{group}.out", json.dumps(out).encode(), key=window[0].encode()
                    )
                if records and not started:
                    started, seen = time.perf_counter(), len(records)
                done += len(records)
            if time.monotonic() - last_commit >= COMMIT_INTERVAL_S:
                await producer.flush()
                await consumer.commit()
                last_commit = time.monotonic()
        elapsed = time.perf_counter() - started
        await producer.flush()
        await consumer.commit()
    finally:
        await consumer.stop()
        await producer.stop()
    return _rate(events, seen, elapsed, launched)


def run_quix(guarantee: str) -> Contender:
    """Quix Streams' tumbling window in a child process (its app runs its own poll loop)."""

    async def quix(bootstrap: str, topic: str, events: int) -> float:
        args = [
            sys.executable,
            "-m",
            "bench._windows_quix",
            bootstrap,
            topic,
            str(events),
            guarantee,
        ]
        process = await asyncio.create_subprocess_exec(
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=ROOT,
        )
        try:
            out, err = await asyncio.wait_for(process.communicate(), 600)
        except TimeoutError:
            process.kill()  # a stuck run must not hold up the other contenders
            await process.wait()
            raise
        if process.returncode != 0:
            raise RuntimeError(err.decode()[-1500:] or f"exit code {process.returncode}")
        rate: float = json.loads(out.decode().strip().splitlines()[-1])["events_per_s"]
        return rate

    quix.__doc__ = f"Quix Streams tumbling_window().agg(...).final(), {guarantee}."
    return quix


CONTENDERS: dict[str, Contender] = {
    "raw aiokafka, hand-written (at least once, no state)": raw_aiokafka,
    "agent-events WindowProcessor, exactly once": ours_exactly_once,
    "agent-events WindowProcessor, at least once": ours_at_least_once,
    "agent-events WindowProcessor, exactly once, repartitioned": ours_repartitioned,
    "Quix Streams, at least once": run_quix("at-least-once"),
    "Quix Streams, exactly once": run_quix("exactly-once"),
}
