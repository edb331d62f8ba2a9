"""``agent-events dlq list|show|redrive``: what the services could not handle, and why.

Every command reads the dead-letter topic without a consumer group (nothing is committed, no
service is disturbed), up to its end as it was when the command started. ``list`` shows one
row per dead letter with its error headers (``__agent_events.errors.*``, Kafka Connect's
names); ``show`` prints one record in full (every header, the stack trace, the decoded event);
``redrive`` sends the matching records back to their source topics with their original key,
value and headers. Like ``kafka-consumer-groups --reset-offsets``, ``redrive`` is a dry run
unless ``--execute`` is given: the DLQ is append-only, so re-driving twice sends twice.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, NamedTuple

import typer
from aiokafka.structs import TopicPartition
from rich.table import Table

from agent_events.agent_runtime.errors import ConfigError, DecodeError
from agent_events.cli._common import (
    AsJson,
    BootstrapServers,
    ConfigFile,
    ConnectTimeout,
    table_console,
    tool_settings,
)
from agent_events.consumers.dlq import error_headers_of
from agent_events.consumers.redrive import (
    DeadLetterFilter,
    DeadLetterRecord,
    read_dead_letters,
    redrive,
)
from agent_events.consumers.scan import log_end_offsets, standalone_consumer, topic_partitions
from agent_events.producers.config import KafkaConnectionConfig
from agent_events.schemas.codec import EventCodec
from agent_events.schemas.registry import make_event_codec

__all__ = ["app", "dead_letter_json"]

app = typer.Typer(help="List, show and re-drive dead-lettered records.", no_args_is_help=True)

DlqTopic = Annotated[
    str | None,
    typer.Option(
        "--dlq-topic",
        help="The dead-letter topic (default: $AGENT_EVENTS_DLQ_TOPIC, else agent.events.dlq).",
        show_default=False,
    ),
]
SourceTopic = Annotated[
    str | None, typer.Option("--source-topic", help="Only records that failed on this topic.")
]
Stage = Annotated[
    str | None, typer.Option("--stage", help="Only this failure stage: decode, handle, produce.")
]
Group = Annotated[str | None, typer.Option("--group", help="Only records this group failed.")]
Handler = Annotated[
    str | None, typer.Option("--handler", help="Only this handler (shell pattern, e.g. '*Store*').")
]
Exception_ = Annotated[
    str | None,
    typer.Option("--exception", help="Only this exception class (shell pattern, '*Timeout*')."),
]
EventType_ = Annotated[str | None, typer.Option("--type", help="Only this event type.")]
Key = Annotated[str | None, typer.Option("--key", help="Only this record key (session id).")]
Limit = Annotated[int | None, typer.Option("--limit", min=1, help="At most this many records.")]

_STAGES = ("decode", "handle", "produce")


def _selection(
    source_topic: str | None,
    stage: str | None,
    group: str | None,
    handler: str | None,
    exception: str | None,
    event_type: str | None,
    key: str | None,
) -> DeadLetterFilter:
    if stage is not None and stage not in _STAGES:
        raise ConfigError(f"--stage {stage!r} is not one of: {', '.join(_STAGES)}")
    return DeadLetterFilter(
        source_topic=source_topic,
        stage=stage,
        consumer_group=group,
        handler=handler,
        exception=exception,
        event_type=event_type,
        key=key,
    )


class _Dlq(NamedTuple):
    """Where the dead letters are, and how their values are framed."""

    conn: KafkaConnectionConfig
    topic: str
    codec: EventCodec


def _connect(
    bootstrap_servers: str | None,
    config_file: Path | None,
    connect_timeout: float | None,
    dlq_topic: str | None,
) -> _Dlq:
    settings = tool_settings(bootstrap_servers, config_file, connect_timeout)
    topic = dlq_topic or settings.dlq_topic
    if not topic:
        raise ConfigError("no dead-letter topic: the settings disable it; give --dlq-topic")
    codec = make_event_codec(settings.value_format, settings.schema_registry_url)
    return _Dlq(settings.connection(), topic, codec)


def _ts(ms: int | str | None) -> str:
    try:
        return datetime.fromtimestamp(int(ms or 0) / 1000, UTC).isoformat(timespec="milliseconds")
    except (TypeError, ValueError):
        return str(ms)


def dead_letter_json(
    letter: DeadLetterRecord, *, full: bool = False, codec: EventCodec | None = None
) -> dict[str, Any]:
    """A dead letter as JSON: position, key, error headers; ``full`` adds headers and the
    event, decoded with ``codec`` (default: single-object Avro; a registry codec must have
    been prepared for the value)."""
    errors = dict(letter.errors)
    if not full:
        errors.pop("exception.stacktrace", None)
    out: dict[str, Any] = {
        "partition": letter.partition,
        "offset": letter.offset,
        "ts": letter.timestamp_ms,
        "key": letter.key.decode("utf-8", "replace") if letter.key is not None else None,
        "event_type": letter.event_type,
        "errors": errors,
    }
    if full:
        out["headers"] = {
            k: v.decode("utf-8", "replace")
            for k, v in letter.headers
            if not k.startswith("__agent_events.errors.")
        }
        out["payload"], out["decode_error"] = None, None
        if letter.value is not None:
            try:
                event = (codec or EventCodec()).decode(letter.value)
                out["payload"] = event.model_dump(mode="json")
            except DecodeError as exc:
                out["decode_error"] = f"{type(exc).__name__}: {exc}"
    return out


@app.command("list")
def list_(
    bootstrap_servers: BootstrapServers = None,
    config_file: ConfigFile = None,
    dlq_topic: DlqTopic = None,
    source_topic: SourceTopic = None,
    stage: Stage = None,
    group: Group = None,
    handler: Handler = None,
    exception: Exception_ = None,
    event_type: EventType_ = None,
    key: Key = None,
    limit: Limit = None,
    as_json: AsJson = False,
    connect_timeout: ConnectTimeout = None,
) -> None:
    """List dead letters with where they came from and why they failed."""
    conn, dlq, _ = _connect(bootstrap_servers, config_file, connect_timeout, dlq_topic)
    selection = _selection(source_topic, stage, group, handler, exception, event_type, key)

    async def collect() -> list[DeadLetterRecord]:
        return [letter async for letter in read_dead_letters(conn, dlq, selection, limit=limit)]

    letters = asyncio.run(collect())
    if as_json:
        for letter in letters:
            typer.echo(json.dumps(dead_letter_json(letter)))
        return
    table = Table(
        "PARTITION", "OFFSET", "FAILED AT", "SOURCE", "GROUP", "STAGE", "HANDLER", "EXCEPTION",
        "MESSAGE", box=None,
    )  # fmt: skip
    for letter in letters:
        e = letter.errors
        table.add_row(
            str(letter.partition),
            str(letter.offset),
            _ts(e.get("first.failure.ts")),
            f"{e.get('topic')}[{e.get('partition')}]@{e.get('offset')}",
            e.get("consumer.group", ""),
            e.get("stage", ""),
            e.get("handler", ""),
            e.get("exception.class.name", "").rsplit(".", 1)[-1],
            e.get("exception.message", "")[:80],
        )
    console = table_console()
    console.print(table)
    console.print(f"{len(letters)} dead letters in {dlq}", style="dim")


async def _find(dlq: _Dlq, partition: int, offset: int) -> Any:
    """The record at ``offset``, with its writer schema prepared for ``dlq.codec``."""
    record = await _read_at(dlq.conn, dlq.topic, partition, offset)
    if dlq.codec.needs_prepare and record.value:
        await dlq.codec.prepare(record.value)
    return record


async def _read_at(conn: KafkaConnectionConfig, topic: str, partition: int, offset: int) -> Any:
    async with standalone_consumer(conn) as consumer:
        tps = await topic_partitions(consumer, topic, [partition])
        tp: TopicPartition = tps[0]
        consumer.assign([tp])
        begins = await consumer.beginning_offsets([tp])
        begin, end = begins[tp], (await log_end_offsets(consumer, [tp]))[tp]
        if not begin <= offset < max(end, begin + 1):
            raise ConfigError(
                f"{topic} partition {partition} holds offsets {begin}..{end - 1}; "
                f"there is no record at {offset}"
            )
        consumer.seek(tp, offset)
        async with asyncio.timeout(conn.connect_timeout_s):
            while True:
                batch = await consumer.getmany(tp, timeout_ms=500)
                for record in batch.get(tp, []):
                    if record.offset == offset:
                        return record
                    if record.offset > offset:
                        raise ConfigError(
                            f"there is no record at {topic} partition {partition} offset "
                            f"{offset} (the next one is at {record.offset})"
                        )


@app.command()
def show(
    partition: Annotated[int, typer.Argument(min=0, help="Partition of the DLQ record.")],
    offset: Annotated[int, typer.Argument(min=0, help="Offset of the DLQ record.")],
    bootstrap_servers: BootstrapServers = None,
    config_file: ConfigFile = None,
    dlq_topic: DlqTopic = None,
    as_json: AsJson = False,
    connect_timeout: ConnectTimeout = None,
) -> None:
    """Show one dead letter in full: error headers, stack trace, headers, decoded event."""
    found = _connect(bootstrap_servers, config_file, connect_timeout, dlq_topic)
    dlq = found.topic
    record = asyncio.run(_find(found, partition, offset))
    headers = list(record.headers or ())
    letter = DeadLetterRecord(
        partition=record.partition,
        offset=record.offset,
        timestamp_ms=record.timestamp,
        key=record.key,
        value=record.value,
        headers=headers,
        errors=error_headers_of(headers),
    )
    info = dead_letter_json(letter, full=True, codec=found.codec)
    if as_json:
        typer.echo(json.dumps(info))
        return
    console = table_console()
    console.print(f"[bold]{dlq}[/] partition {partition} offset {offset}  key {info['key']}")
    errors = dict(info["errors"])
    stack = errors.pop("exception.stacktrace", None)
    table = Table("ERROR HEADER", "VALUE", box=None)
    for name, value in sorted(errors.items()):
        table.add_row(f"__agent_events.errors.{name}", value)
    console.print(table)
    other = Table("HEADER", "VALUE", box=None)
    for name, value in info["headers"].items():
        other.add_row(name, value)
    console.print(other)
    if info["payload"] is not None:
        console.print_json(json.dumps(info["payload"]))
    else:
        console.print(f"payload not decodable: {info['decode_error']}")
    if stack:
        console.print(stack, markup=False, highlight=False)


@app.command("redrive")
def redrive_(
    bootstrap_servers: BootstrapServers = None,
    config_file: ConfigFile = None,
    dlq_topic: DlqTopic = None,
    source_topic: SourceTopic = None,
    stage: Stage = None,
    group: Group = None,
    handler: Handler = None,
    exception: Exception_ = None,
    event_type: EventType_ = None,
    key: Key = None,
    limit: Limit = None,
    execute: Annotated[
        bool, typer.Option("--execute", help="Send the records (default: a dry run).")
    ] = False,
    as_json: AsJson = False,
    connect_timeout: ConnectTimeout = None,
) -> None:
    """Send matching dead letters back to their source topics (dry run unless --execute)."""
    conn, dlq, _ = _connect(bootstrap_servers, config_file, connect_timeout, dlq_topic)
    selection = _selection(source_topic, stage, group, handler, exception, event_type, key)
    report = asyncio.run(redrive(conn, dlq, selection, dry_run=not execute, limit=limit))
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "matched": report.matched,
                    "sent": report.sent,
                    "skipped_without_source": report.skipped_without_source,
                    "dry_run": not execute,
                }
            )
        )
        return
    if execute:
        typer.echo(f"re-drove {report.sent} of {report.matched} matching dead letters")
    else:
        typer.echo(f"dry run: {report.matched} dead letters match; add --execute to send them back")
    if report.skipped_without_source:
        typer.echo(f"{report.skipped_without_source} had no source topic header and were skipped")
