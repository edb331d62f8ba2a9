"""What the tool commands (``topics``, ``produce``, ``tail``, ``dlq``, ``verify-order``) share.

The options every tool takes are defined once here, with the same names and environment
variables, so ``--bootstrap-servers`` means the same thing everywhere. :func:`tool_settings`
loads them with the services' settings rule (flags > ``AGENT_EVENTS_*`` environment >
``--config`` file > defaults; a bad value becomes one :class:`ConfigError` line, exit 2), and
:func:`run_until_signalled` runs a long-lived command so that Ctrl-C and SIGTERM stop it
cleanly instead of tearing it down with a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Callable, Coroutine, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console

from agent_events.consumers.capabilities import detect_capabilities, require
from agent_events.consumers.replay import FeatureCheck
from agent_events.producers.config import KafkaConnectionConfig
from agent_events.settings import AgentEventsSettings, load_settings

__all__ = [
    "AsJson",
    "BootstrapServers",
    "ConfigFile",
    "ConnectTimeout",
    "Topic",
    "broker_check",
    "connection",
    "first_error",
    "format_columns",
    "quiet_client_logs",
    "run_until_signalled",
    "stop_on_signals",
    "table_console",
    "tool_settings",
]

T = TypeVar("T")

BootstrapServers = Annotated[
    str | None,
    typer.Option(
        "--bootstrap-servers",
        "-b",
        help="Comma-separated host:port list of Kafka brokers "
        "(default: $AGENT_EVENTS_BOOTSTRAP_SERVERS, else 127.0.0.1:9092).",
        show_default=False,
    ),
]
Topic = Annotated[
    str | None,
    typer.Option(
        "--topic",
        "-t",
        help="The events topic (default: $AGENT_EVENTS_TOPIC, else agent.events).",
        show_default=False,
    ),
]
ConfigFile = Annotated[
    Path | None,
    typer.Option(
        "--config",
        help="Settings file (.toml, .yaml, .env); flags > environment > file.",
        dir_okay=False,
    ),
]
AsJson = Annotated[
    bool, typer.Option("--json", help="Print JSON for scripts instead of tables for people.")
]
ConnectTimeout = Annotated[
    float | None,
    typer.Option(
        "--connect-timeout",
        min=0.1,
        help="Seconds to keep retrying an unreachable broker (default: 30).",
        show_default=False,
    ),
]


def table_console() -> Console:
    """A console for tables on stdout; piped output gets room, so columns are not cut."""
    return Console(width=None if sys.stdout.isatty() else 250)


def first_error(exc: ValidationError) -> str:
    """The first problem pydantic found, as ``field: message`` (one line)."""
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error.get("loc", ())) or "value"
    return f"{where}: {error.get('msg', 'invalid')}"


def tool_settings(
    bootstrap_servers: str | None = None,
    config_file: Path | None = None,
    connect_timeout_s: float | None = None,
    *,
    topic: str | None = None,
) -> AgentEventsSettings:
    """The settings a tool runs with: its flags over the environment over ``--config``.

    The same rule and names as the services (``AGENT_EVENTS_BOOTSTRAP_SERVERS``,
    ``AGENT_EVENTS_SECURITY_PROTOCOL`` ...), so a tool reaches every cluster a service
    reaches. Raises ConfigError (one line) for a bad value.
    """
    flags: dict[str, Any] = {
        "bootstrap_servers": bootstrap_servers,
        "connect_timeout_s": connect_timeout_s,
        "topic": topic,
    }
    return load_settings(flags, config_file)


def connection(
    bootstrap_servers: str | None = None,
    config_file: Path | None = None,
    connect_timeout_s: float | None = None,
) -> KafkaConnectionConfig:
    """The validated connection of a tool (see :func:`tool_settings`)."""
    return tool_settings(bootstrap_servers, config_file, connect_timeout_s).connection()


@contextlib.contextmanager
def stop_on_signals(stop: Callable[[], None]) -> Iterator[None]:
    """Call ``stop`` on SIGINT or SIGTERM while the block runs (on the running loop).

    A long-running command then winds down by itself (drains, closes its clients) and
    returns normally; a second signal falls back to the default behaviour.
    """
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []

    def on_signal(sig: signal.Signals) -> None:
        loop.remove_signal_handler(sig)
        stop()

    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, on_signal, sig)
            installed.append(sig)
    try:
        yield
    finally:
        for sig in installed:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(sig)


def run_until_signalled(main: Callable[[asyncio.Event], Coroutine[Any, Any, T]]) -> T:
    """Run ``main(stop)`` on a new loop; SIGINT/SIGTERM set ``stop`` so it ends cleanly."""

    async def runner() -> T:
        stop = asyncio.Event()
        with stop_on_signals(stop.set):
            return await main(stop)

    return asyncio.run(runner())


def format_columns(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """Rows under headers in left-aligned columns, as Kafka's tools print them (greppable,
    never truncated, whatever the terminal's width); ``None`` prints as ``-``."""
    cells = [list(headers)] + [["-" if v is None else str(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    )


def broker_check(connection: KafkaConnectionConfig) -> FeatureCheck:
    """A :class:`FeatureCheck` that refuses what the broker lacks.

    Read-only: the broker's features come from its ``ApiVersions`` answer, asked once with
    ``connection``'s own security settings (no probe topic, group or producer).
    """

    async def check(feature: str, *, operation: str) -> None:
        require(await detect_capabilities(connection), feature, operation=operation)

    return check


@contextmanager
def quiet_client_logs() -> Iterator[None]:
    """Keep aiokafka's and the capability check's log lines off a command's stderr.

    The command reports what a broker lacks itself, in one line.
    """
    loggers = [logging.getLogger(n) for n in ("aiokafka", "agent_events.consumers.capabilities")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)
