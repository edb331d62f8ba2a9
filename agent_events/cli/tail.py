"""``agent-events tail``: decoded events as they arrive, filtered, from a kcat-style offset.

It joins no consumer group and commits nothing, so it never disturbs a service. Flags follow
kcat: ``-o/--offset beginning|end|N|-N|s@ms``, ``-e/--exit-at-end``, ``-c/--count``,
``-p/--partition``; ``--json`` prints one envelope per record (``topic, partition, offset, ts,
headers, key, payload``, as kcat's ``-J``). ``--session`` reads only the session's partition.
A record that is not a valid event is shown (``payload`` null, ``error`` set), never skipped
silently. Exit codes: 0 done (also after Ctrl-C), 2 a user mistake.
"""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any

import typer

from agent_events.agent_runtime.errors import DecodeError
from agent_events.agent_runtime.events import SystemEvent, event_as_json
from agent_events.agent_runtime.subscription import type_label
from agent_events.cli._common import (
    AsJson,
    BootstrapServers,
    ConfigFile,
    ConnectTimeout,
    Topic,
    run_until_signalled,
    tool_settings,
)
from agent_events.cli._reader import OffsetSpec, parse_offset, read_records, start_offsets
from agent_events.consumers.scan import standalone_consumer, topic_partitions
from agent_events.producers.headers import header_value
from agent_events.producers.partitioner import partition_for_key
from agent_events.schemas.codec import EventCodec
from agent_events.schemas.registry import make_event_codec

__all__ = ["envelope", "human_line", "tail"]

FROM_END = OffsetSpec("end")


def envelope(record: Any, event: SystemEvent | None, error: str | None) -> dict[str, object]:
    """The JSON envelope of one record: kcat ``-J``'s fields with the event as ``payload``."""
    out: dict[str, object] = {
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "ts": record.timestamp,
        "headers": {k: v.decode("utf-8", "replace") for k, v in record.headers or ()},
        "key": record.key.decode("utf-8", "replace") if record.key is not None else None,
        "payload": event_as_json(event) if event is not None else None,
    }
    if error is not None:
        out["error"] = error
    return out


def human_line(record: Any, event: SystemEvent | None, error: str | None) -> str:
    """One line for people: where, when, type, agent, session, duration, error."""
    where = f"{record.partition}@{record.offset}"
    if event is None:
        return f"{where} undecodable record ({error})"
    parts = [
        where,
        event.timestamp.isoformat(timespec="milliseconds"),
        type_label(event.event_type),
        f"agent={event.agent_id}",
    ]
    if event.session_id is not None:
        parts.append(f"session={event.session_id}")
    if event.execution_time_ms is not None:
        parts.append(f"{event.execution_time_ms}ms")
    if event.error_type or event.error_message:
        parts.append(f"error={event.error_type}: {event.error_message}")
    return " ".join(parts)


def _matches(
    event: SystemEvent | None, types: set[str], agent: str | None, session: str | None
) -> bool:
    if event is None:
        return not (types or agent or session)
    if types:
        label = type_label(event.event_type).lower()
        if label not in types and event.event_type.name.lower() not in types:
            return False
    if agent is not None and event.agent_id != agent:
        return False
    return session is None or event.session_id == session


def tail(
    topic: Topic = None,
    bootstrap_servers: BootstrapServers = None,
    config_file: ConfigFile = None,
    offset: Annotated[
        OffsetSpec,
        typer.Option(
            "--offset",
            "-o",
            parser=parse_offset,
            metavar="beginning|end|N|-N|s@MS",
            help="Where to start in each partition.",
        ),
    ] = FROM_END,
    exit_at_end: Annotated[
        bool,
        typer.Option("--exit-at-end", "-e", help="Stop at the end of every partition."),
    ] = False,
    count: Annotated[
        int | None, typer.Option("--count", "-c", min=1, help="Stop after this many events.")
    ] = None,
    partitions: Annotated[
        list[int] | None,
        typer.Option("--partition", "-p", min=0, help="Only this partition (repeatable)."),
    ] = None,
    event_types: Annotated[
        list[str] | None,
        typer.Option("--type", help="Only events of this type, e.g. error_occurred (repeatable)."),
    ] = None,
    agent: Annotated[str | None, typer.Option("--agent", help="Only this agent's events.")] = None,
    session: Annotated[
        str | None,
        typer.Option("--session", help="Only this session's events (reads its partition)."),
    ] = None,
    as_json: AsJson = False,
    connect_timeout: ConnectTimeout = None,
) -> None:
    """Print decoded events as they arrive (kcat-like offsets and filters); Ctrl-C stops."""
    settings = tool_settings(bootstrap_servers, config_file, connect_timeout, topic=topic)
    conn, topic_name = settings.connection(), settings.topic
    types = {t.lower() for t in event_types or ()}
    codec = make_event_codec(settings.value_format, settings.schema_registry_url)

    async def main(stop: asyncio.Event) -> None:
        shown = 0
        async with standalone_consumer(conn) as consumer:
            tps = await topic_partitions(consumer, topic_name, partitions)
            if session is not None and partitions is None:
                n = len(consumer.partitions_for_topic(topic_name) or ())
                own = partition_for_key(session.encode(), n)
                tps = [tp for tp in tps if tp.partition == own]
            start = await start_offsets(consumer, tps, offset, conn.bootstrap_servers)
            async for record in read_records(
                consumer, tps, start, until_end=exit_at_end, stop=stop
            ):
                if session is not None and (record.key or b"") != session.encode():
                    continue
                if codec.needs_prepare and record.value:
                    await codec.prepare(record.value)  # a registry id seen the first time
                event, error = _decode(codec, record)
                if not _matches(event, types, agent, session):
                    continue
                line = (
                    json.dumps(envelope(record, event, error), ensure_ascii=False)
                    if as_json
                    else human_line(record, event, error)
                )
                typer.echo(line)
                shown += 1
                if count is not None and shown >= count:
                    return

    run_until_signalled(main)


def _decode(codec: EventCodec, record: Any) -> tuple[SystemEvent | None, str | None]:
    if record.value is None:
        return None, "no value (tombstone)"
    try:
        return codec.decode(record.value), None
    except DecodeError as exc:
        kind = header_value(record.headers, "content-type")
        hint = f" content-type {kind.decode('utf-8', 'replace')}" if kind else ""
        return None, f"{type(exc).__name__}: {exc}{hint}"
