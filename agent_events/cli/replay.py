"""``agent-events replay``: re-read a topic range into a file, a topic or a store.

Flags follow kcat's ideas with long names: a start (``--from-beginning``, ``--from-offset
P:O``, ``--from-time ISO``, ``--shift -N``), a stop (``--until-end``, ``--until-offset``,
``--until-time``, ``--count``), a scope (``--partition``, ``--session``), filters
(``--type``, ``--agent``) and one sink (``--to-file`` (default: JSON lines on stdout),
``--to-topic``, ``--to-store sqlite:PATH``). ``--dry-run`` prints the plan and reads
nothing. Every argument is checked before anything connects; a mistake prints one line
and exits 2. The replay joins no consumer group and commits nothing. Records come oldest
first across partitions (timestamp, then partition, then offset), the same on every run.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from agent_events.agent_runtime.errors import ConfigError
from agent_events.cli._common import (
    AsJson,
    BootstrapServers,
    ConfigFile,
    ConnectTimeout,
    Topic,
    broker_check,
    format_columns,
    quiet_client_logs,
    tool_settings,
)
from agent_events.consumers.handlers import EventSourcingHandler, SQLiteEventStore
from agent_events.consumers.replay import (
    FromBeginning,
    FromOffsets,
    FromShift,
    FromTime,
    HandlerSink,
    JsonLinesSink,
    ReplayPlan,
    ReplayProgress,
    ReplayReport,
    ReplaySink,
    ReplaySpec,
    StartAt,
    StopAt,
    TopicSink,
    UntilEnd,
    UntilOffsets,
    UntilTime,
    parse_moment,
    parse_offsets,
    plan_replay,
    replay,
)
from agent_events.producers.config import KafkaConnectionConfig
from agent_events.schemas.codec import EventCodec
from agent_events.schemas.registry import make_event_codec
from agent_events.services.store import sqlite_path, store_from_url

__all__ = [
    "parse_store",
    "replay_command",
    "spec_from_flags",
]


def parse_store(url: str) -> str:
    """The store URL of ``--to-store``, as the ``store`` service takes it.

    ``sqlite:///relative.db``, ``sqlite:////absolute.db`` or ``postgresql://...``; the short
    ``sqlite:PATH`` is accepted too. Raises ConfigError for anything else.
    """
    if url.startswith("sqlite:") and not url.startswith("sqlite://"):
        path = url.removeprefix("sqlite:")
        url = "sqlite:///" + path if path else url
    store_from_url(url)  # validates
    return url


def _one(flag_values: dict[str, object], what: str) -> str | None:
    given = [name for name, value in flag_values.items() if value not in (None, False, [])]
    if len(given) > 1:
        raise ConfigError(f"{' and '.join(given)} conflict: give one {what}")
    return given[0] if given else None


def spec_from_flags(
    *,
    topic: str,
    from_beginning: bool = False,
    from_offset: list[str] | None = None,
    from_time: str | None = None,
    shift: int | None = None,
    until_end: bool = False,
    until_offset: list[str] | None = None,
    until_time: str | None = None,
    count: int | None = None,
    partitions: list[int] | None = None,
    session: str | None = None,
    types: list[str] | None = None,
    agents: list[str] | None = None,
) -> ReplaySpec:
    """The :class:`ReplaySpec` the command's flags describe; ConfigError on conflicts."""
    chosen = _one(
        {
            "--from-beginning": from_beginning,
            "--from-offset": from_offset or None,
            "--from-time": from_time,
            "--shift": shift,
        },
        "start",
    )
    start: StartAt = FromBeginning()
    if chosen == "--from-offset" and from_offset:
        start = FromOffsets(parse_offsets(from_offset, "--from-offset"))
    elif chosen == "--from-time" and from_time is not None:
        start = FromTime(parse_moment(from_time, "--from-time"))
    elif chosen == "--shift" and shift is not None:
        if shift >= 0:
            raise ConfigError(
                f"--shift -N starts N records before the end of each partition; got {shift}"
            )
        start = FromShift(-shift)
    chosen = _one(
        {
            "--until-end": until_end,
            "--until-offset": until_offset or None,
            "--until-time": until_time,
        },
        "stop",
    )
    stop: StopAt = UntilEnd()
    if chosen == "--until-offset" and until_offset:
        stop = UntilOffsets(parse_offsets(until_offset, "--until-offset"))
    elif chosen == "--until-time" and until_time is not None:
        stop = UntilTime(parse_moment(until_time, "--until-time"))
    return ReplaySpec(
        topic=topic,
        start=start,
        stop=stop,
        count=count,
        partitions=tuple(partitions) if partitions else None,
        session_id=session,
        event_types=frozenset(types or ()),
        agent_ids=frozenset(agents or ()),
    )


class _RateColumn(ProgressColumn):
    """Records per second, as a rich progress column."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.0f} rec/s" if speed else "- rec/s", style="progress.data.speed")


@asynccontextmanager
async def _open_sink(
    connection: KafkaConnectionConfig, to_topic: str | None, to_file: str, to_store: str | None
) -> AsyncIterator[ReplaySink]:
    if to_topic is not None:
        yield TopicSink(connection, to_topic)
    elif to_store is not None:
        url = parse_store(to_store)
        store = store_from_url(url)
        if isinstance(store, SQLiteEventStore):
            await asyncio.to_thread(sqlite_path(url).parent.mkdir, parents=True, exist_ok=True)
        await store.open()
        try:
            yield HandlerSink(EventSourcingHandler(store), name=f"event store {url}")
        finally:
            await store.close()
    else:
        yield JsonLinesSink(to_file)


def _print_plan(plan: ReplayPlan) -> None:
    rows = [(plan.topic, r.partition, r.start, r.stop, r.records) for r in plan.ranges]
    typer.echo(
        format_columns(("TOPIC", "PARTITION", "START-OFFSET", "STOP-OFFSET", "RECORDS"), rows)
    )
    spec = plan.spec
    note = f"{plan.records} records in range over {len(plan.ranges)} partition(s)"
    filters = [
        f"session {spec.session_id}" if spec.session_id else "",
        f"type {', '.join(sorted(spec.event_types))}" if spec.event_types else "",
        f"agent {', '.join(sorted(spec.agent_ids))}" if spec.agent_ids else "",
        f"at most {spec.count} events" if spec.count else "",
    ]
    kept = "; ".join(f for f in filters if f)
    typer.echo(note + (f"; kept while reading: {kept}" if kept else "") + "; nothing was read")


def _summary(report: ReplayReport, sink: ReplaySink) -> str:
    extra = [f"{report.read} read"]
    if report.filtered:
        extra.append(f"{report.filtered} filtered out")
    if report.undecodable:
        extra.append(f"{report.undecodable} undecodable, skipped")
    tail = (
        f" (stopped after --count {report.plan.spec.count})" if report.stopped_by == "count" else ""
    )
    # Under a second, a rate says more about start-up than about reading: leave it out.
    rate = (
        f" ({report.read / report.elapsed_s:,.0f} records read/s)"
        if report.elapsed_s >= 1.0
        else ""
    )
    return (
        f"replayed {report.delivered} event{'' if report.delivered == 1 else 's'} "
        f"({', '.join(extra)}) from {report.plan.topic} into {sink.description} "
        f"in {report.elapsed_s:.1f} s{rate}{tail}"
    )


async def _run(
    spec: ReplaySpec,
    connection: KafkaConnectionConfig,
    *,
    to_topic: str | None,
    to_file: str,
    to_store: str | None,
    rate: float | None,
    dry_run: bool,
    as_json: bool,
    codec: EventCodec,
) -> None:
    check = broker_check(connection)
    plan = await plan_replay(connection, spec, check_feature=check)
    err = Console(stderr=True, soft_wrap=True)
    if dry_run:
        if as_json:
            typer.echo(json.dumps(plan.to_json()))
        else:
            _print_plan(plan)
        return
    async with _open_sink(connection, to_topic, to_file, to_store) as sink:
        progress = Progress(
            TextColumn("replay {task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            _RateColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            TimeElapsedColumn(),
            console=err,
            disable=not err.is_terminal,
        )
        task = progress.add_task(plan.topic, total=plan.records or None)

        def show(p: ReplayProgress) -> None:
            progress.update(task, completed=p.position)

        with progress:
            report = await replay(
                connection, spec, sink, plan=plan, rate=rate, on_progress=show, codec=codec
            )
    if as_json:
        payload = json.dumps(report.to_json())
        typer.echo(payload, err=isinstance(sink, JsonLinesSink) and sink.path == "-")
    else:
        err.print(_summary(report, sink), highlight=False)


def replay_command(
    topic: Topic = None,
    from_beginning: Annotated[
        bool, typer.Option("--from-beginning", help="Start at the earliest offset (the default).")
    ] = False,
    from_offset: Annotated[
        list[str] | None,
        typer.Option(
            "--from-offset", help="Start offset: P:O per partition (repeat), or O for all."
        ),
    ] = None,
    from_time: Annotated[
        str | None,
        typer.Option(
            "--from-time",
            help="Start at the first record at or after this ISO 8601 time (local if no zone).",
        ),
    ] = None,
    shift: Annotated[
        int | None,
        typer.Option("--shift", help="-N: start N records before the end of each partition."),
    ] = None,
    until_end: Annotated[
        bool,
        typer.Option("--until-end", help="Stop at the end as of the start (the default)."),
    ] = False,
    until_offset: Annotated[
        list[str] | None,
        typer.Option("--until-offset", help="Stop before this offset: P:O (repeat) or O."),
    ] = None,
    until_time: Annotated[
        str | None,
        typer.Option("--until-time", help="Stop before the first record at or after this time."),
    ] = None,
    count: Annotated[
        int | None, typer.Option("--count", "-c", min=1, help="Stop after N delivered events.")
    ] = None,
    partition: Annotated[
        list[int] | None,
        typer.Option("--partition", "-p", min=0, help="Read only this partition (repeat)."),
    ] = None,
    session: Annotated[
        str | None,
        typer.Option("--session", help="Only this session (reads its one partition)."),
    ] = None,
    event_type: Annotated[
        list[str] | None, typer.Option("--type", help="Only this event type (repeat).")
    ] = None,
    agent: Annotated[
        list[str] | None, typer.Option("--agent", help="Only this agent id (repeat).")
    ] = None,
    to_topic: Annotated[
        str | None, typer.Option("--to-topic", help="Copy records (key, value, headers) here.")
    ] = None,
    to_file: Annotated[
        str | None,
        typer.Option("--to-file", help="Write JSON lines here ('-': stdout; the default: -)."),
    ] = None,
    to_store: Annotated[
        str | None,
        typer.Option(
            "--to-store",
            help="Rebuild an event store: sqlite:///rel.db, sqlite:////abs.db or postgresql://...",
        ),
    ] = None,
    rate: Annotated[
        float | None, typer.Option("--rate", min=0.001, help="At most N events per second.")
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Print partitions, offset ranges and counts; read nothing."),
    ] = False,
    as_json: AsJson = False,
    bootstrap_servers: BootstrapServers = None,
    config_file: ConfigFile = None,
    connect_timeout: ConnectTimeout = None,
) -> None:
    """Replay a topic range into a file, another topic or an event store (commits nothing).

    With --json, the dry run's plan or the final report is printed as JSON.
    """
    settings = tool_settings(bootstrap_servers, config_file, connect_timeout, topic=topic)
    topic = settings.topic
    spec = spec_from_flags(
        topic=topic,
        from_beginning=from_beginning,
        from_offset=from_offset,
        from_time=from_time,
        shift=shift,
        until_end=until_end,
        until_offset=until_offset,
        until_time=until_time,
        count=count,
        partitions=partition,
        session=session,
        types=event_type,
        agents=agent,
    )
    _one({"--to-topic": to_topic, "--to-file": to_file, "--to-store": to_store}, "sink")
    if to_topic is not None and to_topic == topic:
        raise ConfigError("--to-topic is the topic being replayed; that would copy it into itself")
    if to_store is not None:
        parse_store(to_store)
    connection = settings.connection()
    with quiet_client_logs():
        asyncio.run(
            _run(
                spec,
                connection,
                to_topic=to_topic,
                to_file=to_file or "-",
                to_store=to_store,
                rate=rate,
                dry_run=dry_run,
                as_json=as_json,
                codec=make_event_codec(settings.value_format, settings.schema_registry_url),
            )
        )
    sys.stdout.flush()
