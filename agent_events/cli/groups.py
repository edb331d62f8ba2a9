"""``agent-events groups list|describe|reset-offsets``: consumer groups as ``kafka-consumer-groups``.

Columns and flags are that tool's: ``GROUP TOPIC PARTITION CURRENT-OFFSET LOG-END-OFFSET LAG
CONSUMER-ID HOST CLIENT-ID``; ``reset-offsets`` takes ``--topic T[:0,1]`` or ``--all-topics``,
one of ``--to-earliest``, ``--to-latest``, ``--to-current``, ``--to-offset N``, ``--to-datetime
ISO``, ``--shift-by N``, and is a dry run unless ``--execute`` is given. A reset is refused
while the group has members. Every command needs a broker that lists group offsets (not
Tansu): it says so in one line and exits 2. ``--json`` prints JSON for scripts.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Collection
from typing import Annotated

import typer

from agent_events.agent_runtime.errors import ConfigError
from agent_events.cli._common import (
    AsJson,
    BootstrapServers,
    ConfigFile,
    ConnectTimeout,
    broker_check,
    connection,
    format_columns,
    quiet_client_logs,
)
from agent_events.consumers.groups import (
    GroupDescription,
    OffsetChange,
    ResetStrategy,
    describe_group,
    execute_offset_reset,
    list_groups,
    plan_offset_reset,
)
from agent_events.consumers.replay import parse_moment

__all__ = ["app", "parse_topic_scope", "strategy_from_flags"]

app = typer.Typer(
    help="Consumer groups: list, describe (offsets and lag), reset offsets.",
    no_args_is_help=True,
)


def parse_topic_scope(values: list[str]) -> dict[str, Collection[int] | None]:
    """``["a", "b:0,2"]`` -> ``{"a": None, "b": [0, 2]}`` (None: every partition)."""
    scope: dict[str, Collection[int] | None] = {}
    for value in values:
        topic, sep, parts = value.partition(":")
        if not topic:
            raise ConfigError(f"--topic: give TOPIC or TOPIC:P,P..., got {value!r}")
        if topic in scope:
            raise ConfigError(f"--topic: {topic!r} is given twice")
        if not sep:
            scope[topic] = None
            continue
        try:
            partitions = sorted({int(p) for p in parts.split(",") if p.strip()})
        except ValueError:
            raise ConfigError(f"--topic: partitions of {value!r} are not whole numbers") from None
        if not partitions or partitions[0] < 0:
            raise ConfigError(f"--topic: give partitions >= 0 after the colon, got {value!r}")
        scope[topic] = partitions
    return scope


def strategy_from_flags(
    *,
    to_earliest: bool = False,
    to_latest: bool = False,
    to_current: bool = False,
    to_offset: int | None = None,
    to_datetime: str | None = None,
    shift_by: int | None = None,
) -> ResetStrategy:
    """The one reset the flags ask for; ConfigError if none or several are given."""
    given = {
        "--to-earliest": to_earliest,
        "--to-latest": to_latest,
        "--to-current": to_current,
        "--to-offset": to_offset is not None,
        "--to-datetime": to_datetime is not None,
        "--shift-by": shift_by is not None,
    }
    chosen = [name for name, on in given.items() if on]
    if len(chosen) != 1:
        names = ", ".join(given)
        what = "conflict" if chosen else "missing"
        raise ConfigError(
            f"give exactly one of {names} ({' and '.join(chosen) + ' ' if chosen else ''}{what})"
        )
    if to_datetime is not None:
        return ResetStrategy("datetime", moment=parse_moment(to_datetime, "--to-datetime"))
    if to_offset is not None:
        return ResetStrategy("offset", offset=to_offset)
    if shift_by is not None:
        return ResetStrategy("shift", shift=shift_by)
    return ResetStrategy("earliest" if to_earliest else "latest" if to_latest else "current")


@app.command("list")
def list_command(
    as_json: AsJson = False,
    bootstrap_servers: BootstrapServers = None,
    config_file: ConfigFile = None,
    connect_timeout: ConnectTimeout = None,
) -> None:
    """List consumer groups with their state and number of members."""
    conn = connection(bootstrap_servers, config_file, connect_timeout)
    check = broker_check(conn)
    with quiet_client_logs():
        groups = asyncio.run(list_groups(conn, check_feature=check))
    if as_json:
        typer.echo(
            json.dumps(
                [{"group": g.group_id, "state": g.state, "members": g.members} for g in groups]
            )
        )
        return
    typer.echo(
        format_columns(
            ("GROUP", "STATE", "MEMBERS"), [(g.group_id, g.state, g.members) for g in groups]
        )
    )


def _print_description(group: GroupDescription) -> None:
    typer.echo(
        f"Consumer group '{group.group_id}': state {group.state}, "
        f"{len(group.members)} member(s), total lag {group.total_lag}\n"
    )
    columns = (
        "GROUP",
        "TOPIC",
        "PARTITION",
        "CURRENT-OFFSET",
        "LOG-END-OFFSET",
        "LAG",
        "CONSUMER-ID",
        "HOST",
        "CLIENT-ID",
    )
    rows = [
        (
            group.group_id,
            p.topic,
            p.partition,
            p.current_offset,
            p.log_end_offset,
            p.lag,
            p.member.consumer_id if p.member else None,
            p.member.host if p.member else None,
            (p.member.client_id or None) if p.member else None,
        )
        for p in group.partitions
    ]
    typer.echo(format_columns(columns, rows))


@app.command("describe")
def describe_command(
    group: Annotated[str, typer.Argument(help="The consumer group id.")],
    as_json: AsJson = False,
    bootstrap_servers: BootstrapServers = None,
    config_file: ConfigFile = None,
    connect_timeout: ConnectTimeout = None,
) -> None:
    """Members, assignment, committed offset, end offset and lag per partition."""
    conn = connection(bootstrap_servers, config_file, connect_timeout)
    check = broker_check(conn)
    with quiet_client_logs():
        description = asyncio.run(describe_group(conn, group, check_feature=check))
    if as_json:
        typer.echo(json.dumps(description.to_json()))
    else:
        _print_description(description)


def _print_plan(changes: list[OffsetChange]) -> None:
    rows = [(c.group_id, c.topic, c.partition, c.current_offset, c.new_offset) for c in changes]
    typer.echo(
        format_columns(("GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "NEW-OFFSET"), rows)
    )


@app.command("reset-offsets")
def reset_offsets_command(
    group: Annotated[str, typer.Option("--group", "-g", help="The consumer group id.")],
    topic: Annotated[
        list[str] | None,
        typer.Option("--topic", help="TOPIC or TOPIC:P,P (repeat) to reset."),
    ] = None,
    all_topics: Annotated[
        bool, typer.Option("--all-topics", help="Every topic the group has offsets for.")
    ] = False,
    to_earliest: Annotated[bool, typer.Option("--to-earliest", help="The log start.")] = False,
    to_latest: Annotated[bool, typer.Option("--to-latest", help="The log end.")] = False,
    to_current: Annotated[
        bool, typer.Option("--to-current", help="The committed offset (no change).")
    ] = False,
    to_offset: Annotated[
        int | None, typer.Option("--to-offset", help="This offset (clamped to the log).")
    ] = None,
    to_datetime: Annotated[
        str | None,
        typer.Option("--to-datetime", help="The first record at or after this ISO 8601 time."),
    ] = None,
    shift_by: Annotated[
        int | None,
        typer.Option("--shift-by", help="Move the committed offset by N (negative: back)."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the plan only (the default).")
    ] = False,
    execute: Annotated[bool, typer.Option("--execute", help="Commit the new offsets.")] = False,
    as_json: AsJson = False,
    bootstrap_servers: BootstrapServers = None,
    config_file: ConfigFile = None,
    connect_timeout: ConnectTimeout = None,
) -> None:
    """Plan (and with --execute, commit) new offsets; refused while the group has members."""
    if dry_run and execute:
        raise ConfigError("--dry-run and --execute conflict: give one")
    if bool(topic) == all_topics:
        raise ConfigError("give --topic TOPIC[:P,P] (repeatable) or --all-topics, not both")
    scope = parse_topic_scope(topic) if topic else None
    strategy = strategy_from_flags(
        to_earliest=to_earliest,
        to_latest=to_latest,
        to_current=to_current,
        to_offset=to_offset,
        to_datetime=to_datetime,
        shift_by=shift_by,
    )
    conn = connection(bootstrap_servers, config_file, connect_timeout)
    check = broker_check(conn)

    async def run() -> list[OffsetChange]:
        changes = await plan_offset_reset(conn, group, scope, strategy, check_feature=check)
        if execute:
            await execute_offset_reset(conn, group, changes, check_feature=check)
        return changes

    with quiet_client_logs():
        changes = asyncio.run(run())
    if as_json:
        typer.echo(
            json.dumps(
                {"executed": execute, "offsets": [c.to_json() for c in changes]}, sort_keys=False
            )
        )
    else:
        _print_plan(changes)
        if execute:
            typer.echo(f"committed new offsets of group '{group}' for {len(changes)} partition(s)")
        else:
            typer.echo("dry run: nothing changed; add --execute to commit these offsets", err=True)
