"""``agent-events produce``: JSON lines in, SystemEvents out, through ``KafkaEventProducer``.

Each non-blank input line is one event as JSON (the fields of :class:`SystemEvent`; at least
``event_type`` and ``agent_id``). Events go through the same producer an agent uses, so they
are keyed by session, carry the sequence headers and are Avro-encoded like any other.

Input is streamed: a line that is not a valid event stops the command with its line number,
after the events before it were sent and acknowledged (the message says how many), and exit
code 2. ``--dry-run`` only validates, sending nothing.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import IO, Annotated, Any

import typer
from aiokafka.errors import KafkaError as AIOKafkaError
from pydantic import ValidationError

from agent_events.agent_runtime.errors import ConfigError, ProduceError
from agent_events.agent_runtime.events import SystemEvent
from agent_events.cli._common import (
    AsJson,
    BootstrapServers,
    ConfigFile,
    ConnectTimeout,
    Topic,
    first_error,
    tool_settings,
)
from agent_events.producers.config import ProducerConfig
from agent_events.producers.producer import KafkaEventProducer

__all__ = ["parse_event_line", "produce"]

_SETTLE_EVERY = 1_000


def parse_event_line(line: str, number: int) -> SystemEvent:
    """The event of one input line; ConfigError naming the line and the first problem."""
    try:
        return SystemEvent.model_validate_json(line)
    except ValidationError as exc:
        problem = first_error(exc)
        if exc.errors()[0].get("type") == "json_invalid":
            problem = "not valid JSON"
        raise ConfigError(f"line {number}: {problem}") from None


def produce(
    source: Annotated[
        str, typer.Argument(help="A file of JSON lines, or - for standard input.", metavar="FILE")
    ] = "-",
    topic: Topic = None,
    bootstrap_servers: BootstrapServers = None,
    config_file: ConfigFile = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Validate every line; send nothing.")
    ] = False,
    as_json: AsJson = False,
    connect_timeout: ConnectTimeout = None,
) -> None:
    """Send events read as JSON lines (one SystemEvent per line) to TOPIC."""
    settings = tool_settings(bootstrap_servers, config_file, connect_timeout, topic=topic)
    if source != "-" and not Path(source).is_file():
        raise ConfigError(f"FILE {source!r} does not exist; give a file of JSON lines or -")
    summary = asyncio.run(_produce(source, settings.producer_config(), dry_run))
    if as_json:
        typer.echo(json.dumps(summary))
    else:
        verb = "validated" if dry_run else f"produced to {settings.topic}"
        per = summary["partitions"]
        where = (
            " (" + ", ".join(f"partition {p}: {n}" for p, n in sorted(per.items())) + ")"
            if per
            else ""
        )
        typer.echo(f"{summary['events']} events {verb}{where}")


async def _produce(source: str, config: ProducerConfig, dry_run: bool) -> dict[str, Any]:
    stream: IO[str] = (
        sys.stdin if source == "-" else await asyncio.to_thread(open, source, encoding="utf-8")
    )
    partitions: Counter[int] = Counter()
    try:
        if dry_run:
            events = len([event async for event in _events_of(stream)])
        else:
            events = await _send_all(_events_of(stream), config, partitions)
    finally:
        if stream is not sys.stdin:
            stream.close()
    return {
        "events": events,
        "topic": config.topic,
        "dry_run": dry_run,
        "partitions": dict(partitions),
    }


async def _events_of(stream: IO[str]) -> AsyncIterator[SystemEvent]:
    """The events of ``stream``, one line at a time, so a live pipe's events go out as they come."""
    number = 0
    while line := await asyncio.to_thread(stream.readline):
        number += 1
        if line.strip():
            yield parse_event_line(line, number)


async def _send_all(
    events: AsyncIterator[SystemEvent], config: ProducerConfig, partitions: Counter[int]
) -> int:
    """Send every event; returns how many. A bad line stops it after what came before is acked."""
    sent = 0
    pending: list[asyncio.Future[Any]] = []
    async with KafkaEventProducer(config) as producer:
        try:
            async for event in events:
                sent += 1
                pending.append(await producer.send(event))
                if len(pending) >= _SETTLE_EVERY:
                    await _settle(pending, partitions)
        except ConfigError as exc:
            await _settle(pending, partitions)
            acked = sum(partitions.values())
            raise ConfigError(f"{exc}; the {acked} events before it were sent") from None
        await _settle(pending, partitions)
    return sent


async def _settle(pending: list[asyncio.Future[Any]], partitions: Counter[int]) -> None:
    """Wait for every pending acknowledgement; raises the first delivery failure."""
    try:
        results = await asyncio.gather(*pending)
    except AIOKafkaError as exc:
        raise ProduceError(f"the broker did not acknowledge an event: {exc}") from exc
    pending.clear()
    for metadata in results:
        partitions[metadata.partition] += 1
