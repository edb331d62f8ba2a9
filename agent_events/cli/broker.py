"""``agent-events broker start|stop|status``: a local development broker that outlives the command.

Apache Kafka (fetched once from Maven Central, data kept between runs) where a JDK is present,
Tansu (memory only) otherwise or on request. Exit codes: 0 done, 2 a user mistake (one line
on stderr), 3 from ``status`` when no broker is running (as ``pg_ctl status`` does).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from agent_events.broker.dev_broker import (
    DEFAULT_PORT,
    DevBroker,
    DevBrokerState,
    last_started,
)
from agent_events.broker.kafka_libs import DEFAULT_KAFKA_VERSION, is_cached

__all__ = ["FETCH_SIZE", "app", "progress_note"]

FETCH_SIZE = "~106 MB"
"""What a first Kafka start downloads: its jars plus Maven's own repository."""

app = typer.Typer(
    help="Run a local development broker (Apache Kafka, or Tansu without a JDK).",
    no_args_is_help=True,
)


class Kind(StrEnum):
    """Which broker ``start`` runs."""

    auto = "auto"
    kafka = "kafka"
    tansu = "tansu"


DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="Folder for the broker's data, logs and state "
        "(default: ~/.local/share/agent-events/broker).",
        file_okay=False,
    ),
]
FoundDataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="The broker's data folder (default: that of the running broker `start` started "
        "last, else ~/.local/share/agent-events/broker).",
        file_okay=False,
        show_default=False,
    ),
]


def _find(data_dir: Path | None) -> DevBroker:
    """The broker a command without ``--data-dir`` means: the one last started, if it runs."""
    return DevBroker(data_dir or last_started())


@contextmanager
def progress_note(note: str, *, plain: bool = True) -> Iterator[None]:
    """Say on stderr what the wait is for: a spinner on a terminal, else (``plain``) a line.

    A spinner prints nothing when stderr is a pipe or a file, so a long first start would
    look like a hang there.
    """
    err = Console(stderr=True)
    if err.is_terminal:
        with err.status(note + "..."):
            yield
    else:
        if plain:
            typer.echo(note + "...", err=True)
        yield


def _describe(state: DevBrokerState) -> str:
    name = f"Apache Kafka {state.version}" if state.kind == "kafka" else "Tansu"
    return f"{name} at {state.bootstrap_servers} (pid {state.pid}, data in {state.data_dir})"


@app.command()
def start(
    kind: Annotated[
        Kind, typer.Option(help="auto: Apache Kafka if a JDK is found, else Tansu.")
    ] = Kind.auto,
    port: Annotated[
        int, typer.Option(min=1, max=65535, help="Client port on 127.0.0.1.")
    ] = DEFAULT_PORT,
    controller_port: Annotated[
        int | None,
        typer.Option(min=1, max=65535, help="Kafka's controller port (default: --port + 1)."),
    ] = None,
    kafka_version: Annotated[
        str, typer.Option(help="Apache Kafka version (jars cached per version).")
    ] = DEFAULT_KAFKA_VERSION,
    data_dir: DataDir = None,
    ready_timeout: Annotated[
        float, typer.Option(min=1, help="Seconds to wait until the broker serves.")
    ] = 90.0,
) -> None:
    """Start the broker in the background; returns once it serves and prints its address."""
    note = "starting the broker"
    fetching = kind is not Kind.tansu and not is_cached(kafka_version)
    if fetching:
        note += (
            f" (first run: fetching Apache Kafka {kafka_version}'s jars with Maven, {FETCH_SIZE})"
        )
    with progress_note(note, plain=fetching):  # else a refusal stays one line off a terminal
        state = asyncio.run(
            DevBroker(data_dir).start(
                kind=kind.value,
                port=port,
                controller_port=controller_port,
                kafka_version=kafka_version,
                ready_timeout=ready_timeout,
            )
        )
    typer.echo(f"started {_describe(state)}")
    typer.echo(f"bootstrap servers: {state.bootstrap_servers}")


@app.command()
def status(
    data_dir: FoundDataDir = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Say whether the broker runs, with its pid, address and kind (exit 3 if not running)."""
    broker = _find(data_dir)
    state = broker.status()
    if as_json:
        payload: dict[str, object] = {
            "running": state is not None,
            "data_dir": str(broker.data_dir),
        }
        if state is not None:
            payload.update(state.to_json())
        typer.echo(json.dumps(payload))
    elif state is None:
        typer.echo(f"no broker is running from {broker.data_dir}")
    else:
        table = Table(show_header=False, box=None)
        for key, value in (
            ("running", "yes"),
            ("kind", state.kind),
            ("version", state.version),
            ("bootstrap servers", state.bootstrap_servers),
            ("pid", str(state.pid)),
            ("up", f"{time.time() - state.started_at:.0f} s"),
            ("data dir", state.data_dir),
            ("data kept on restart", "yes" if state.data_kept else "no (memory)"),
            ("log", state.log_file),
        ):
            table.add_row(key, value)
        Console().print(table)
    if state is None:
        raise typer.Exit(3)


@app.command()
def stop(
    data_dir: FoundDataDir = None,
    grace: Annotated[
        float, typer.Option(min=0, help="Seconds between SIGTERM and SIGKILL.")
    ] = 30.0,
) -> None:
    """Stop the broker (SIGTERM, then SIGKILL after --grace seconds); its data stays."""
    state = asyncio.run(_find(data_dir).stop(grace_s=grace))
    typer.echo(f"stopped {_describe(state)}")
