"""``agent-events topics create|list|describe``: the topics the pipeline reads and writes.

``create`` waits until metadata shows every partition (a topic is invisible for a moment after
the broker accepts it), so a command run right after it finds the topic. ``describe`` shows
each partition's leader, replicas, in-sync replicas and offset range, as
``kafka-topics --describe`` does. Exit codes: 0 done, 2 a user mistake (a topic that exists
without ``--if-not-exists``, one that does not exist, a bad ``--config``).
"""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any

import typer
from rich.table import Table

from agent_events.agent_runtime.errors import ConfigError
from agent_events.cli._common import (
    AsJson,
    BootstrapServers,
    ConfigFile,
    ConnectTimeout,
    connection,
    table_console,
)
from agent_events.consumers.scan import log_end_offsets, standalone_consumer, topic_partitions
from agent_events.producers.topics import TopicSpec, ensure_topics
from agent_events.transport import KafkaConnectionConfig, admin_client

__all__ = ["app", "describe_topic", "list_topic_names", "missing_topics"]

app = typer.Typer(help="Create, list and describe topics.", no_args_is_help=True)


def _parse_configs(pairs: list[str]) -> dict[str, str]:
    configs: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise ConfigError(
                f"--topic-config {pair!r} is not NAME=VALUE (e.g. cleanup.policy=compact)"
            )
        configs[name.strip()] = value.strip()
    return configs


async def missing_topics(conn: KafkaConnectionConfig, names: list[str]) -> list[str]:
    """Which of ``names`` do not exist (asked without auto-creating any)."""
    async with admin_client(conn) as admin:
        existing = set(await admin.list_topics())
    return [name for name in names if name not in existing]


async def list_topic_names(conn: KafkaConnectionConfig, *, internal: bool) -> list[dict[str, Any]]:
    """Every topic with its partition count and replication factor, sorted by name."""
    async with admin_client(conn) as admin:
        described = await admin.describe_topics()
    rows = []
    for topic in described:
        name = topic["topic"]
        if topic.get("error_code", 0) or (not internal and name.startswith("__")):
            continue
        parts = topic.get("partitions") or []
        rows.append(
            {
                "topic": name,
                "partitions": len(parts),
                "replication_factor": max((len(p.get("replicas", ())) for p in parts), default=0),
            }
        )
    return sorted(rows, key=lambda r: str(r["topic"]))


async def describe_topic(conn: KafkaConnectionConfig, name: str) -> dict[str, Any]:
    """Partitions of ``name`` with leader, replicas, ISR and begin/end offsets."""
    async with admin_client(conn) as admin:
        # A metadata request naming an unknown topic creates it on brokers with
        # auto.create.topics.enable (Kafka's default): ask for the list first.
        if name not in await admin.list_topics():
            raise ConfigError(f"topic {name!r} does not exist; see: agent-events topics list")
        described = await admin.describe_topics([name])
    topic = next((t for t in described if t.get("topic") == name), None)
    if topic is None or topic.get("error_code", 0) or not topic.get("partitions"):
        raise ConfigError(f"topic {name!r} does not exist; see: agent-events topics list")
    async with standalone_consumer(conn) as consumer:
        tps = await topic_partitions(consumer, name)
        begin = await consumer.beginning_offsets(tps)
        end = await log_end_offsets(consumer, tps)
    offsets = {tp.partition: (begin[tp], end[tp]) for tp in tps}
    partitions = []
    for p in sorted(topic["partitions"], key=lambda p: int(p["partition"])):
        number = int(p["partition"])
        first, last = offsets.get(number, (0, 0))
        partitions.append(
            {
                "partition": number,
                "leader": p.get("leader"),
                "replicas": list(p.get("replicas", ())),
                "isr": list(p.get("isr", ())),
                "begin_offset": first,
                "end_offset": last,
            }
        )
    return {"topic": name, "internal": bool(topic.get("is_internal")), "partitions": partitions}


async def _create(conn: KafkaConnectionConfig, spec: TopicSpec, if_not_exists: bool) -> bool:
    """True if created; False if it exists and ``if_not_exists``; ConfigError otherwise."""
    async with admin_client(conn) as admin:
        exists = spec.name in await admin.list_topics()
    if exists:
        if if_not_exists:
            return False
        raise ConfigError(f"topic {spec.name!r} exists already; add --if-not-exists to accept that")
    return spec.name in await ensure_topics(conn, [spec], exist_ok=if_not_exists)


@app.command()
def create(
    name: Annotated[str, typer.Argument(help="Topic name.")],
    partitions: Annotated[int, typer.Option("--partitions", min=1, help="Partition count.")] = 12,
    replication_factor: Annotated[
        int, typer.Option("--replication-factor", min=1, help="Copies of each partition.")
    ] = 1,
    topic_config: Annotated[
        list[str] | None,
        typer.Option(
            "--topic-config",
            help="Topic config NAME=VALUE, e.g. retention.ms=86400000 (repeatable).",
        ),
    ] = None,
    if_not_exists: Annotated[
        bool, typer.Option("--if-not-exists", help="Succeed if the topic exists already.")
    ] = False,
    bootstrap_servers: BootstrapServers = None,
    config_file: ConfigFile = None,
    as_json: AsJson = False,
    connect_timeout: ConnectTimeout = None,
) -> None:
    """Create a topic and wait until every partition has a leader."""
    conn = connection(bootstrap_servers, config_file, connect_timeout)
    spec = TopicSpec(name, partitions, replication_factor, _parse_configs(topic_config or []))
    created = asyncio.run(_create(conn, spec, if_not_exists))
    if as_json:
        typer.echo(json.dumps({"topic": name, "created": created}))
    else:
        typer.echo(
            f"created topic {name} ({partitions} partitions, replication {replication_factor})"
            if created
            else f"topic {name} exists already"
        )


@app.command("list")
def list_(
    internal: Annotated[
        bool, typer.Option("--internal", help="Also list internal topics (__...).")
    ] = False,
    bootstrap_servers: BootstrapServers = None,
    config_file: ConfigFile = None,
    as_json: AsJson = False,
    connect_timeout: ConnectTimeout = None,
) -> None:
    """List topics with their partition count and replication factor."""
    conn = connection(bootstrap_servers, config_file, connect_timeout)
    rows = asyncio.run(list_topic_names(conn, internal=internal))
    if as_json:
        typer.echo(json.dumps(rows))
        return
    table = Table("TOPIC", "PARTITIONS", "REPLICATION", box=None)
    for row in rows:
        table.add_row(str(row["topic"]), str(row["partitions"]), str(row["replication_factor"]))
    table_console().print(table)


@app.command()
def describe(
    name: Annotated[str, typer.Argument(help="Topic name.")],
    bootstrap_servers: BootstrapServers = None,
    config_file: ConfigFile = None,
    as_json: AsJson = False,
    connect_timeout: ConnectTimeout = None,
) -> None:
    """Show each partition's leader, replicas, in-sync replicas and offsets."""
    conn = connection(bootstrap_servers, config_file, connect_timeout)
    info = asyncio.run(describe_topic(conn, name))
    if as_json:
        typer.echo(json.dumps(info))
        return
    table = Table(
        "PARTITION", "LEADER", "REPLICAS", "ISR", "BEGIN", "END", title=f"topic {name}", box=None
    )
    for p in info["partitions"]:
        table.add_row(
            str(p["partition"]),
            str(p["leader"]),
            ",".join(map(str, p["replicas"])),
            ",".join(map(str, p["isr"])),
            str(p["begin_offset"]),
            str(p["end_offset"]),
        )
    table_console().print(table)
