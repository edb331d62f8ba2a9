"""Soak: a producer, a consumer service and the window service at a steady rate, RSS sampled.

    python -m bench.soak --bootstrap-servers 127.0.0.1:9092 --rate 5000 --minutes 10

Three processes run against one fresh 12-partition topic: a producer sending ``--rate``
events/s (``KafkaEventProducer``, paced every 10 ms), ``agent-events consume metrics`` and
``agent-events consume aggregate``. Every ``--every`` seconds the resident set size of each
is read from ``/proc``; at the end each is stopped with SIGTERM (a clean drain must exit 0)
and the report gives, per process, the RSS after the first minute (warm-up), at the end,
the range, and the growth after warm-up per 10 minutes (a least-squares line through the
samples). "Flat" means that growth stays under 10% of the RSS after warm-up.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

__all__ = ["main"]

WARM_UP_S = 60.0
PARTITIONS = 12


@dataclass
class Series:
    """RSS samples of one process: (seconds since start, MiB)."""

    name: str
    samples: list[tuple[float, float]] = field(default_factory=list)
    exit_code: int | None = None

    def after_warm_up(self) -> list[tuple[float, float]]:
        return [(t, m) for t, m in self.samples if t >= WARM_UP_S] or self.samples

    def growth_per_10_min(self) -> float:
        points = self.after_warm_up()
        if len(points) < 2:
            return 0.0
        slope = statistics.linear_regression([t for t, _ in points], [m for _, m in points]).slope
        return slope * 600

    def flat(self) -> bool:
        points = self.after_warm_up()
        return bool(points) and self.growth_per_10_min() < 0.10 * points[0][1]


def rss_mib(pid: int) -> float | None:
    """The resident set size of ``pid`` in MiB, or None once it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return None


async def produce(bootstrap: str, topic: str, rate: float, seconds: float) -> None:
    """The producer process: ``rate`` events/s for ``seconds``, then flush and say how many."""
    from agent_events.producers import KafkaEventProducer
    from bench.kafka import make_events

    tick_s = 0.01
    per_tick = rate * tick_s
    events = make_events(10_000)
    sent = 0
    async with KafkaEventProducer(bootstrap_servers=bootstrap, topic=topic) as producer:
        started = time.monotonic()
        while time.monotonic() - started < seconds:
            due = int((time.monotonic() - started) / tick_s * per_tick)
            while sent < due:
                event = events[sent % len(events)].model_copy(
                    update={"event_id": uuid.uuid4(), "timestamp": _now()}
                )
                await producer.send(event)
                sent += 1
            await asyncio.sleep(tick_s)
        await producer.flush()
    print(json.dumps({"sent": sent, "acknowledged": producer.stats.acknowledged}), flush=True)


def _now() -> datetime:
    return datetime.now(UTC)


async def _new_topic(bootstrap: str) -> str:
    from agent_events.broker import create_topic

    return await create_topic(bootstrap, f"soak-{uuid.uuid4().hex[:8]}", partitions=PARTITIONS)


async def _lag(bootstrap: str, topic: str, group: str) -> int:
    """Records of ``topic`` the group has not committed yet (what it did not keep up with)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        ends = await consumer.end_offsets(tps)
        behind = 0
        for tp in tps:
            behind += ends[tp] - ((await consumer.committed(tp)) or 0)
        return behind
    finally:
        await consumer.stop()


def run_soak(bootstrap: str, rate: float, minutes: float, every_s: float) -> dict[str, object]:
    topic = asyncio.run(_new_topic(bootstrap))
    seconds = minutes * 60
    base = ["-b", bootstrap, "-t", topic]
    commands = {
        "producer": [
            sys.executable, "-m", "bench.soak", "--produce-only",
            "--bootstrap-servers", bootstrap, "--topic", topic,
            "--rate", str(rate), "--minutes", str(minutes),
        ],
        "consume metrics": ["agent-events", "consume", "metrics", *base, "-g", f"{topic}-metrics"],
        "consume aggregate": [
            "agent-events", "consume", "aggregate", *base, "-g", f"{topic}-aggregate",
        ],
    }  # fmt: skip
    processes = {
        name: subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        for name, cmd in commands.items()
    }
    series = {name: Series(name) for name in processes}
    load_start = os.getloadavg()
    started = time.monotonic()
    while processes["producer"].poll() is None:
        now = time.monotonic() - started
        for name, process in processes.items():
            rss = rss_mib(process.pid)
            if rss is not None:
                series[name].samples.append((now, rss))
        print(
            f"{now:6.0f} s  " + "  ".join(f"{s.name} {s.samples[-1][1]:.0f} MiB" for s in
                                          series.values() if s.samples),
            file=sys.stderr, flush=True,
        )  # fmt: skip
        time.sleep(every_s)
        if now > seconds + 120:
            processes["producer"].kill()
    out = processes["producer"].stdout
    produced = json.loads((out.readline() if out is not None else "") or "{}")
    time.sleep(5)  # let the services take the last records
    for name, process in processes.items():
        if name != "producer" and process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for name, process in processes.items():
        series[name].exit_code = process.wait(timeout=120)
    groups = {"consume metrics": f"{topic}-metrics", "consume aggregate": f"{topic}-aggregate"}
    lag = {name: asyncio.run(_lag(bootstrap, topic, group)) for name, group in groups.items()}
    return {
        "lag_at_end": lag,
        "topic": topic,
        "rate": rate,
        "minutes": minutes,
        "produced": produced,
        "load_average": {"start": load_start, "end": os.getloadavg()},
        "series": [asdict(s) | {"flat": s.flat()} for s in series.values()],
    }


def report(result: dict[str, object]) -> str:
    lines = [
        f"soak: {result['rate']:,.0f} events/s for {result['minutes']} min, "
        f"produced {result['produced']}; load average {result['load_average']}",
        f"not committed at the end (lag): {result['lag_at_end']}",
        "",
        "| process | RSS after 1 min | RSS at end | min-max | growth per 10 min | flat | exit |",
        "|---|---:|---:|---:|---:|---|---:|",
    ]
    for raw in result["series"]:  # type: ignore[attr-defined]
        s = Series(raw["name"], [tuple(x) for x in raw["samples"]], raw["exit_code"])
        points = s.after_warm_up()
        values = [m for _, m in s.samples] or [0.0]
        lines.append(
            f"| {s.name} | {points[0][1]:.0f} MiB | {values[-1]:.0f} MiB | "
            f"{min(values):.0f}-{max(values):.0f} MiB | {s.growth_per_10_min():+.1f} MiB | "
            f"{'yes' if s.flat() else 'NO'} | {s.exit_code} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__)
    parser.add_argument("--bootstrap-servers", default="127.0.0.1:9092")
    parser.add_argument("--rate", type=float, default=5000.0)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--every", type=float, default=10.0, help="seconds between samples")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--produce-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--topic", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.produce_only:
        asyncio.run(produce(args.bootstrap_servers, args.topic, args.rate, args.minutes * 60))
        return 0
    result = run_soak(args.bootstrap_servers, args.rate, args.minutes, args.every)
    print(report(result))
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
